//! Choosing a notifier at run time: [`NotifierKind`] by name, [`AnyNotifier`] to hold one.

use std::fmt;
use std::str::FromStr;

/// The cross-process notifier kinds, as named in configuration and recorded in a
/// segment's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum NotifierKind {
    /// [`Futex`](crate::Futex): `futex`.
    Futex = 1,
    /// [`EventFd`](crate::EventFd): `eventfd`.
    EventFd = 2,
    /// [`Fifo`](crate::Fifo): `fifo`.
    Fifo = 3,
    /// [`Semaphore`](crate::Semaphore): `sem`.
    Semaphore = 4,
}

impl NotifierKind {
    /// Every kind, in code order.
    pub const ALL: [NotifierKind; 4] = [
        NotifierKind::Futex,
        NotifierKind::EventFd,
        NotifierKind::Fifo,
        NotifierKind::Semaphore,
    ];

    /// The stable name (`futex`, `eventfd`, `fifo`, `sem`).
    pub fn name(self) -> &'static str {
        match self {
            NotifierKind::Futex => "futex",
            NotifierKind::EventFd => "eventfd",
            NotifierKind::Fifo => "fifo",
            NotifierKind::Semaphore => "sem",
        }
    }

    /// The code stored in a segment header.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Decodes a header code.
    pub fn from_code(code: u32) -> Option<NotifierKind> {
        NotifierKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether the kind has an fd that epoll can watch.
    pub fn is_pollable(self) -> bool {
        matches!(self, NotifierKind::EventFd | NotifierKind::Fifo)
    }
}

impl fmt::Display for NotifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown notifier name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownNotifier(pub String);

impl fmt::Display for UnknownNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = NotifierKind::ALL.iter().map(|k| k.name()).collect();
        write!(
            f,
            "unknown notifier {:?}; accepted: {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownNotifier {}

impl FromStr for NotifierKind {
    type Err = UnknownNotifier;

    /// ```
    /// use shm_notify::NotifierKind;
    /// assert_eq!("sem".parse::<NotifierKind>(), Ok(NotifierKind::Semaphore));
    /// let err = "pipe".parse::<NotifierKind>().unwrap_err();
    /// assert_eq!(err.to_string(), r#"unknown notifier "pipe"; accepted: futex, eventfd, fifo, sem"#);
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NotifierKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownNotifier(s.to_owned()))
    }
}
