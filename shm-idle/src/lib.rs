//! Idle strategies (spin, yield, sleep, backoff, epoll-park) for shm-channel. Not built
//! yet: see the project issues.
