//! An in-memory client and server joined back to back, with simulated
//! time and bounded stepping: the test bed for the whole protocol.
//!
//! Each [`Pair::step`] moves everything each side has to send to the
//! other once; [`Pair::drive`] steps until nothing moves, for at most a
//! given number of steps. Time passes only through [`Pair::advance`].
//! The wires are exposed, so that tests can hold back, drop, alter or
//! inject bytes as a man in the middle would.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::time::Duration;

use crate::connection::{ClientConfig, Connection, Error, Event, ServerConfig};
use crate::fuzzing::TestRng;

/// A client and a server connection wired together.
#[derive(Debug)]
pub struct Pair {
    /// The client side.
    pub client: Connection,
    /// The server side.
    pub server: Connection,
    /// Simulated time.
    pub now: Duration,
    /// Bytes from the client not yet delivered to the server.
    pub to_server: Vec<u8>,
    /// Bytes from the server not yet delivered to the client.
    pub to_client: Vec<u8>,
    /// Events the client reported, in order.
    pub client_events: Vec<Event>,
    /// Events the server reported, in order.
    pub server_events: Vec<Event>,
    /// The client's error, once it failed.
    pub client_error: Option<Error>,
    /// The server's error, once it failed.
    pub server_error: Option<Error>,
}

impl Pair {
    /// A pair from two configurations; `seed` makes the run repeatable.
    pub fn new(client: ClientConfig, server: ServerConfig, seed: u64) -> Result<Self, Error> {
        let now = Duration::ZERO;
        Ok(Self {
            client: Connection::client(client, now, Box::new(TestRng(seed)))?,
            server: Connection::server(server, now, Box::new(TestRng(seed ^ 0x5eed)))?,
            now,
            to_server: Vec::new(),
            to_client: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_error: None,
            server_error: None,
        })
    }

    /// Collects what both sides want to send into the wires, and their
    /// events.
    pub fn collect(&mut self) {
        while let Some(b) = self.client.poll_transmit() {
            self.to_server.extend_from_slice(&b);
        }
        while let Some(b) = self.server.poll_transmit() {
            self.to_client.extend_from_slice(&b);
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    /// Delivers the server-bound wire to the server.
    pub fn deliver_to_server(&mut self) {
        let bytes = core::mem::take(&mut self.to_server);
        if !bytes.is_empty() && self.server_error.is_none() && !self.server.is_closed() {
            if let Err(e) = self.server.handle_input(&bytes, self.now) {
                self.server_error = Some(e);
            }
        }
    }

    /// Delivers the client-bound wire to the client.
    pub fn deliver_to_client(&mut self) {
        let bytes = core::mem::take(&mut self.to_client);
        if !bytes.is_empty() && self.client_error.is_none() && !self.client.is_closed() {
            if let Err(e) = self.client.handle_input(&bytes, self.now) {
                self.client_error = Some(e);
            }
        }
    }

    /// One exchange: collect, deliver both ways, collect. Returns whether
    /// any byte moved.
    pub fn step(&mut self) -> bool {
        self.collect();
        let moved = !self.to_server.is_empty() || !self.to_client.is_empty();
        self.deliver_to_server();
        self.deliver_to_client();
        self.collect();
        moved
    }

    /// Steps until nothing moves or `max_steps` were taken; returns the
    /// steps taken.
    pub fn drive(&mut self, max_steps: usize) -> usize {
        for i in 0..max_steps {
            if !self.step() {
                return i;
            }
        }
        max_steps
    }

    /// Lets `d` pass on both sides.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        if self.client_error.is_none() {
            if let Err(e) = self.client.handle_timeout(self.now) {
                self.client_error = Some(e);
            }
        }
        if self.server_error.is_none() {
            if let Err(e) = self.server.handle_timeout(self.now) {
                self.server_error = Some(e);
            }
        }
        self.collect();
    }

    /// Whether both sides are logged in.
    pub fn authenticated(&self) -> bool {
        self.client.is_authenticated() && self.server.is_authenticated()
    }
}
