"""``lifecycle bench``: what one pipeline run costs, at the size of a real customer base and beyond.

It builds a synthetic world of N contacts in a private sandbox and home, then runs the whole pipeline
(``lifecycle run``, in a child process, as the hourly schedule would) three times: the first full run, a run
after an hour in which about 1 % of the contacts did something (sandbox/hour.py), and a run with nothing new
at the same ``--as-of``. Each run is measured per stage (ingest, transform, activate): wall seconds, peak
resident memory of the run's whole process tree, rows changed, API calls per endpoint, write calls against
the fewest the batch limits allow, and the time the vendors' rate limits alone would take (the floor). With
``--limits both`` the same world is run once with the sandbox's rate limits off (our own cost) and once on
(the API-bound cost). One JSON file per run lands in ``bench/results/``; ``bench/measure.py`` measures a run,
``bench/runner.py`` drives the scenario and prints the table the README carries.
"""
