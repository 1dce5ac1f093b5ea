"""Where deliveries, attempts and idempotency keys are written, by what they store:

events      events with one delivery per target, and idempotency keys (publish)
claims      taking deliveries for an attempt; parking those that cannot have one now
attempts    recording attempts and moving their deliveries on
waiting     releasing waiting deliveries, probes, failing them with a disabled webhook
deliveries  whether a task was sent, redelivery rounds, cancellation, the sweep's finds
conditions  the conditions on a delivery row those statements share
dialect     what differs between PostgreSQL and SQLite
rows        the named rows that cross the store's border
stores      how a worker runs claims and records (group commit in `batcher`)
"""
