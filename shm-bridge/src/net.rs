//! The zenoh session a bridge runs on: peer mode, explicit endpoints or a config file.

use crate::BridgeError;
use std::path::PathBuf;

/// Where a bridge's zenoh session connects and listens.
///
/// With no endpoints and no file it is zenoh's default: a peer that finds others by
/// multicast scouting on the local network. Given endpoints, scouting is off and only
/// those are used (what tests and fixed deployments want). A config file is read first
/// and the endpoints given here are set on top of it.
///
/// ```no_run
/// let net = shm_bridge::Net {
///     listen: vec!["tcp/127.0.0.1:7447".into()],
///     ..Default::default()
/// };
/// let session = net.open()?;
/// # Ok::<(), shm_bridge::BridgeError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Net {
    /// Endpoints to connect to (`tcp/host:port`).
    pub connect: Vec<String>,
    /// Endpoints to listen on.
    pub listen: Vec<String>,
    /// A zenoh configuration file (JSON5) to start from.
    pub config: Option<PathBuf>,
}

impl Net {
    /// Opens the session.
    pub fn open(&self) -> Result<zenoh::Session, BridgeError> {
        use zenoh::Wait;
        let mut config = match &self.config {
            Some(path) => {
                zenoh::Config::from_file(path).map_err(BridgeError::zenoh("config file"))?
            }
            None => zenoh::Config::default(),
        };
        let set = |config: &mut zenoh::Config, key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(BridgeError::zenoh(key))
        };
        if self.config.is_none() {
            set(&mut config, "mode", "\"peer\"".into())?;
        }
        let list = |eps: &[String]| {
            let quoted: Vec<String> = eps.iter().map(|e| format!("{e:?}")).collect();
            format!("[{}]", quoted.join(","))
        };
        if !self.connect.is_empty() {
            set(&mut config, "connect/endpoints", list(&self.connect))?;
        }
        if !self.listen.is_empty() {
            set(&mut config, "listen/endpoints", list(&self.listen))?;
        }
        if !self.connect.is_empty() || !self.listen.is_empty() {
            set(&mut config, "scouting/multicast/enabled", "false".into())?;
        }
        zenoh::open(config)
            .wait()
            .map_err(BridgeError::zenoh("open session"))
    }
}
