//! Cross-process notifiers (futex, eventfd, FIFO, POSIX semaphore) behind one `Notifier`
//! trait. Not built yet: see the project issues.
