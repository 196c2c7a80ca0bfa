-- Each contact's current demo (docs/demos.md#demo-bookings), one row per email, as of as_of.
--
-- Bookings linked by reschedules form a chain (old invitee -> new invitee); the chain's last booking is
-- the demo as it stands, its first booking tells when the demo was booked. A contact with several chains
-- (booked again after a cancellation) shows an upcoming booked demo first, else the latest change.
with recursive

-- one row per booking (invitee): when it was made, and when it was canceled outright
bookings as (
    select
        invitee_uri,
        email,
        booked_at as created_at,
        canceled_at,
        previous_invitee_uri,
        event_name,
        start_at,
        end_at
    from {{ ref('fct_demo_bookings') }}
),

-- chain_step 0 is the first booking of a chain (its previous invitee is unknown or absent)
chains (invitee_uri, root_invitee_uri, chain_step) as (
    select invitee_uri, invitee_uri as root_invitee_uri, 0 as chain_step
    from bookings
    where not exists (
        select 1 from bookings as previous
        where previous.invitee_uri = bookings.previous_invitee_uri
    )

    union all

    select bookings.invitee_uri, chains.root_invitee_uri, chains.chain_step + 1
    from bookings
    inner join chains on bookings.previous_invitee_uri = chains.invitee_uri
    -- a malformed loop of links must not recurse forever
    where chains.chain_step < 100
),

latest_in_chain as (
    select
        chains.root_invitee_uri,
        bookings.*,
        row_number() over (
            partition by chains.root_invitee_uri
            order by chains.chain_step desc, bookings.created_at desc
        ) as position_from_end
    from chains
    inner join bookings on chains.invitee_uri = bookings.invitee_uri
),

current_demos as (
    select
        latest.email,
        case
            when latest.canceled_at is not null then 'canceled'
            when latest.end_at <= {{ as_of() }} then 'completed'
            else 'booked'
        end as demo_status,
        latest.invitee_uri,
        latest.event_name,
        latest.start_at,
        latest.end_at,
        root.created_at as booked_at,
        case
            when latest.canceled_at is not null then latest.canceled_at
            when latest.end_at <= {{ as_of() }} then latest.end_at
            else latest.created_at
        end as last_changed_at,
        latest.previous_invitee_uri is not null as is_rescheduled,
        latest.root_invitee_uri
    from latest_in_chain as latest
    inner join bookings as root on latest.root_invitee_uri = root.invitee_uri
    where latest.position_from_end = 1
),

ranked as (
    select
        *,
        row_number() over (
            partition by email
            order by
                case when demo_status = 'booked' then 0 else 1 end asc,
                last_changed_at desc,
                root_invitee_uri asc
        ) as demo_rank
    from current_demos
)

select
    email,
    demo_status,
    invitee_uri,
    event_name,
    start_at,
    end_at,
    booked_at,
    last_changed_at,
    is_rescheduled
from ranked
where demo_rank = 1
