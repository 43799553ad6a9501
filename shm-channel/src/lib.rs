//! Typed channels: shm-ring + a notifier + an idle strategy, with the waiter protocol.
//! Not built yet: see the project issues.
