//! Two `Channels`, client and server role, wired back to back; shared by
//! the `channel_*` tests.
#![allow(dead_code, unreachable_pub)]

use proto_ssh::channel::{ChannelConfig, ChannelError, ChannelEvent, ChannelId, Channels};
use proto_ssh::version::Role;
use proto_ssh::wire::Put;

/// Which end a failure happened at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

pub struct Pair {
    pub client: Channels,
    pub server: Channels,
}

impl Pair {
    pub fn new() -> Self {
        Self::with_config(ChannelConfig::default())
    }

    pub fn with_config(config: ChannelConfig) -> Self {
        Self {
            client: Channels::new(Role::Client, config.clone()),
            server: Channels::new(Role::Server, config),
        }
    }

    /// Moves payloads both ways until neither side has any to send.
    pub fn try_pump(&mut self) -> Result<(), (Side, ChannelError)> {
        loop {
            let mut moved = false;
            while let Some(p) = self.client.poll_payload() {
                moved = true;
                self.server
                    .handle_message(&p)
                    .map_err(|e| (Side::Server, e))?;
            }
            while let Some(p) = self.server.poll_payload() {
                moved = true;
                self.client
                    .handle_message(&p)
                    .map_err(|e| (Side::Client, e))?;
            }
            if !moved {
                return Ok(());
            }
        }
    }

    pub fn pump(&mut self) {
        self.try_pump().unwrap();
    }

    /// A session opened by the client and accepted by the server: the
    /// client's id and the server's.
    pub fn open_session(&mut self) -> (ChannelId, ChannelId) {
        let c = self.client.open_session().unwrap();
        self.pump();
        let s = match self.server.poll_event() {
            Some(ChannelEvent::OpenRequest { id, .. }) => id,
            other => panic!("expected OpenRequest, got {other:?}"),
        };
        self.server.accept_open(s).unwrap();
        self.pump();
        assert_eq!(
            self.client.poll_event(),
            Some(ChannelEvent::Opened { id: c })
        );
        (c, s)
    }
}

pub fn events(c: &mut Channels) -> Vec<ChannelEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

pub fn payloads(c: &mut Channels) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_payload()).collect()
}

/// A message `n` for `recipient` followed by `rest`.
pub fn msg(n: u8, recipient: u32, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![n];
    m.put_u32(recipient);
    m.extend_from_slice(rest);
    m
}

/// All data bytes in `Data` events for `id`, in order.
pub fn data_of(events: &[ChannelEvent], id: ChannelId) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            ChannelEvent::Data { id: i, data } if *i == id => Some(data.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}
