-- The lifecycle emails the activations may hand to the marketing platform now, one row per message: the
-- desired state of the emails, as the other sync models hold their destination's. Every message due
-- (planned, due at or before as_of) and every one an earlier run handed over without learning its fate
-- (sending), with its template, params, the recipient's name and whether the rules still let it go
-- (may_send; reason when they do not). activations/sends.py sends from here (docs/sends.md).
select
    messages.message_key,
    messages.email,
    messages.sequence,
    messages.step,
    messages.template_id,
    messages.params,
    messages.due_at,
    messages.status,
    messages.may_send,
    messages.reason,
    nullif(
        trim({{ dbt.concat(["coalesce(contacts.first_name, '')", "' '", "coalesce(contacts.last_name, '')"]) }}),
        ''
    ) as recipient_name
from {{ ref('fct_messages') }} as messages
left join {{ ref('dim_contacts') }} as contacts on messages.email = contacts.email
where messages.status = 'sending'
    or (messages.status = 'planned' and messages.due_at <= {{ as_of() }})
