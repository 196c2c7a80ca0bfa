-- Step 1 of docs/sequences.md#how-messages-are-made, the targeting half: the entry triggers each sequence
-- sees (docs/sequences.md#targeted-sequences). Its entry trigger, narrowed by its entry filters (an empty
-- list lets every trigger in; several lists must all let it in): the contact's audience and segment as
-- tagged at the trigger, the submission's webinar code and form, any product of the purchase. From here
-- on a targeted sequence is an ordinary one on this narrower stream: re-entry and merge count only these.
-- A view: a filter of int_sequence_triggers that the instances (and a merge sequence's params) read.
with sequences as (
    select distinct
        sequence,
        entry_trigger,
        -- an empty list is null in the seed, '' in a unit test's fixture
        coalesce(entry_audiences, '') as entry_audiences,
        coalesce(entry_segments, '') as entry_segments,
        coalesce(entry_products, '') as entry_products,
        coalesce(entry_webinar_codes, '') as entry_webinar_codes,
        coalesce(entry_forms, '') as entry_forms
    from {{ ref('sequences') }}
),

triggers as (
    select * from {{ ref('int_sequence_triggers') }}
    where occurred_at <= {{ as_of() }}
)

select
    sequences.sequence,
    triggers.email,
    triggers.trigger,
    triggers.occurred_at,
    triggers.instance_key,
    triggers.anchor_at,
    triggers.withdrawn_at,
    triggers.params,
    triggers.segment,
    triggers.primary_audience,
    triggers.form_id,
    triggers.webinar_code,
    triggers.product_ids
from sequences
inner join triggers on sequences.entry_trigger = triggers.trigger
where (sequences.entry_audiences = ''
        or {{ in_pipe_list('triggers.primary_audience', 'sequences.entry_audiences') }})
    and (sequences.entry_segments = ''
        or {{ in_pipe_list('triggers.segment', 'sequences.entry_segments') }})
    and (sequences.entry_webinar_codes = ''
        or {{ in_pipe_list('triggers.webinar_code', 'sequences.entry_webinar_codes') }})
    and (sequences.entry_forms = '' or {{ in_pipe_list('triggers.form_id', 'sequences.entry_forms') }})
    and (sequences.entry_products = ''
        or {{ pipe_lists_overlap('triggers.product_ids', 'sequences.entry_products') }})
