//! Flow-control accounting for one channel (RFC 4254 §5.2), one struct
//! per direction.
//!
//! All arithmetic is checked: the window is a `uint32` and a peer can try
//! to push it past 2^32-1 (russh CVE-2025-54804) or send past it.

use super::ChannelError;

/// The most data put in one CHANNEL_DATA whatever the peer allows, so that
/// the packet stays well below the packet layer's 256 KiB limit.
pub const MAX_DATA_CHUNK: u32 = 128 * 1024;

/// What the peer lets us send.
#[derive(Debug, Clone)]
pub(crate) struct SendWindow {
    /// Bytes we may still send.
    window: u32,
    /// The most data per message, from the peer's open or confirmation.
    max_packet: u32,
}

impl SendWindow {
    pub(crate) fn new(window: u32, max_packet: u32) -> Self {
        Self { window, max_packet }
    }

    /// Bytes that may be sent now, over as many messages as needed.
    pub(crate) fn available(&self) -> u32 {
        if self.max_packet == 0 {
            0
        } else {
            self.window
        }
    }

    /// The size of the next message carrying up to `want` bytes.
    pub(crate) fn chunk(&self, want: usize) -> usize {
        let limit = self.window.min(self.max_packet).min(MAX_DATA_CHUNK);
        want.min(usize::try_from(limit).unwrap_or(usize::MAX))
    }

    /// `n` bytes, at most [`chunk`](Self::chunk), were sent.
    pub(crate) fn take(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.window = self.window.saturating_sub(n);
    }

    /// The peer added `add` bytes. Returns whether the window reopened
    /// from zero.
    pub(crate) fn adjust(&mut self, add: u32) -> Result<bool, ChannelError> {
        let was_shut = self.window == 0;
        self.window = self
            .window
            .checked_add(add)
            .ok_or(ChannelError::WindowOverflow)?;
        Ok(was_shut && self.window > 0)
    }
}

/// What we let the peer send. `window + outstanding + consumed` never
/// exceeds `initial`.
#[derive(Debug, Clone)]
pub(crate) struct RecvWindow {
    initial: u32,
    /// Bytes the peer may still send.
    window: u32,
    max_packet: u32,
    /// Delivered to the application, not yet reported consumed.
    outstanding: u32,
    /// Consumed but not yet given back with WINDOW_ADJUST.
    consumed: u32,
}

impl RecvWindow {
    pub(crate) fn new(initial: u32, max_packet: u32) -> Self {
        Self {
            initial,
            window: initial,
            max_packet,
            outstanding: 0,
            consumed: 0,
        }
    }

    /// Bytes the peer may still send.
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// The peer sent `n` bytes; `deliver` says whether they reach the
    /// application (and so will come back through `consume`).
    pub(crate) fn receive(&mut self, n: usize, deliver: bool) -> Result<(), ChannelError> {
        let n = u32::try_from(n).map_err(|_| ChannelError::PacketTooLarge)?;
        if n > self.max_packet {
            return Err(ChannelError::PacketTooLarge);
        }
        self.window = self
            .window
            .checked_sub(n)
            .ok_or(ChannelError::WindowExceeded)?;
        if deliver {
            // Cannot overflow: the sum stays within `initial`.
            self.outstanding = self.outstanding.saturating_add(n);
        }
        Ok(())
    }

    /// The application consumed `n` delivered bytes. Returns the
    /// WINDOW_ADJUST to send, if `may_adjust` and half the initial window
    /// is waiting to be given back: one adjust per half window keeps the
    /// peer streaming without a message per read.
    pub(crate) fn consume(
        &mut self,
        n: usize,
        may_adjust: bool,
    ) -> Result<Option<u32>, ChannelError> {
        let n = u32::try_from(n).map_err(|_| ChannelError::OverConsumed)?;
        self.outstanding = self
            .outstanding
            .checked_sub(n)
            .ok_or(ChannelError::OverConsumed)?;
        self.consumed = self.consumed.saturating_add(n);
        let threshold = (self.initial / 2).max(1);
        if may_adjust && self.consumed >= threshold {
            let add = self.consumed;
            self.consumed = 0;
            self.window = self.window.saturating_add(add);
            Ok(Some(add))
        } else {
            Ok(None)
        }
    }
}
