-- Contacts who must get no marketing email as of as_of (docs/engagement.md#who-gets-no-marketing-email), one row per contact and
-- reason; transactional email still goes to them. The platform's events count whether they came from our
-- lifecycle emails or from a newsletter campaign.
--   unsubscribed  an unsubscribe reported by the marketing platform (a later form consent does not lift it)
--   hard_bounce   a hard bounce
--   blocklisted   a spam complaint, or a contact the platform holds as blocklisted (emailBlacklisted) with
--                 no unsubscribe, hard bounce or complaint that explains it
--   no_consent    the contact's latest consent answer on a form is false (a later true lifts it)
with email_events as (
    select
        *,
        case
            when is_unsubscribe then 'unsubscribed'
            when is_hard_bounce then 'hard_bounce'
            when is_spam_complaint then 'blocklisted'
        end as suppression_reason
    from {{ ref('int_marketing__email_events') }}
    where {{ is_valid_email('email') }}
),

event_suppressions as (
    select email, min(occurred_at) as suppressed_at, suppression_reason as reason
    from email_events
    where suppression_reason is not null
    group by email, suppression_reason
),

-- The blocklist flag is Brevo's current state, with no time of its own. Where an event explains it, that
-- event (above) dates it, so that a replay at an earlier as_of does not see it early: this check reads
-- the events without the as_of filter on purpose. The rest is kept at every as_of (never email a blocked
-- address), dated by the contact's last change, or by as_of when that is later.
unexplained_blocklist as (
    select
        contacts.email,
        case
            when coalesce(contacts.modified_at, contacts.created_at) <= {{ as_of() }}
                then coalesce(contacts.modified_at, contacts.created_at)
            else {{ as_of() }}
        end as suppressed_at,
        'blocklisted' as reason
    from {{ ref('stg_marketing__contacts') }} as contacts
    where contacts.is_email_blocklisted
        and contacts.is_valid_email
        and not exists (
            select 1 from {{ ref('stg_marketing__email_events') }} as explaining
            where explaining.email = contacts.email
                and (explaining.is_unsubscribe or explaining.is_hard_bounce or explaining.is_spam_complaint)
        )
        and not exists (
            select 1 from {{ ref('stg_marketing__campaign_events') }} as explaining
            where explaining.email = contacts.email
                and (explaining.is_unsubscribe or explaining.is_hard_bounce or explaining.is_spam_complaint)
        )
),

consent_answers as (
    select email, submitted_at, consent
    from {{ ref('int_form_submissions_tagged') }}
    where consent is not null
),

last_consents as (
    select email, max(submitted_at) as last_consented_at
    from consent_answers
    where consent
    group by email
),

-- refusals since the last yes (a refusal at the same moment as a yes wins)
no_consent as (
    select
        answers.email,
        min(answers.submitted_at) as suppressed_at,
        'no_consent' as reason
    from consent_answers as answers
    left join last_consents on answers.email = last_consents.email
    where not answers.consent
        and (last_consents.last_consented_at is null or answers.submitted_at >= last_consents.last_consented_at)
    group by answers.email
)

-- one row per contact and reason: an unexplained flag means there is no complaint either
select email, suppressed_at, reason from event_suppressions
union all
select email, suppressed_at, reason from unexplained_blocklist
union all
select email, suppressed_at, reason from no_consent
