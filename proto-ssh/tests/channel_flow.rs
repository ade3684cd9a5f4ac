//! Flow control (RFC 4254 §5.2) between two `Channels`, and the peer
//! breaking it.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod channel_pair;

use channel_pair::{data_of, events, msg, payloads, Pair};
use proto_ssh::channel::{ChannelConfig, ChannelError, ChannelEvent};
use proto_ssh::msg::{CHANNEL_DATA, CHANNEL_EXTENDED_DATA, CHANNEL_WINDOW_ADJUST};
use proto_ssh::wire::{Put, Reader};

fn small() -> ChannelConfig {
    ChannelConfig {
        initial_window: 1000,
        max_packet: 300,
        max_channels: 8,
    }
}

fn data_msg(recipient: u32, data: &[u8]) -> Vec<u8> {
    let mut rest = Vec::new();
    rest.put_string(data);
    msg(CHANNEL_DATA, recipient, &rest)
}

#[test]
fn sends_at_most_window_split_by_max_packet() {
    let mut p = Pair::with_config(small());
    let (c, s) = p.open_session();
    assert_eq!(p.client.send_window(c), 1000);
    let data: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
    assert_eq!(p.client.send_data(c, &data).unwrap(), 1000);
    assert_eq!(p.client.send_window(c), 0);
    let out = payloads(&mut p.client);
    // 300 + 300 + 300 + 100, each within the peer's max packet.
    assert_eq!(out.len(), 4);
    for m in &out {
        let mut r = Reader::new(m);
        assert_eq!(r.u8().unwrap(), CHANNEL_DATA);
        r.u32().unwrap();
        assert!(r.string().unwrap().len() <= 300);
    }
    for m in &out {
        p.server.handle_message(m).unwrap();
    }
    assert_eq!(p.client.send_data(c, &data[1000..]).unwrap(), 0);
    let ev = events(&mut p.server);
    assert_eq!(data_of(&ev, s), &data[..1000]);
    assert_eq!(p.server.recv_window(s), 0);

    // Consuming less than half the window sends no adjust.
    p.server.consumed(s, 499).unwrap();
    assert!(payloads(&mut p.server).is_empty());
    // Reaching half does, and the client learns it can write again.
    p.server.consumed(s, 1).unwrap();
    p.pump();
    assert_eq!(p.server.recv_window(s), 500);
    assert_eq!(
        events(&mut p.client),
        vec![ChannelEvent::Writable { id: c }]
    );
    assert_eq!(p.client.send_window(c), 500);
    assert_eq!(p.client.send_data(c, &data[1000..]).unwrap(), 500);
    p.pump();
    assert_eq!(data_of(&events(&mut p.server), s), &data[1000..]);
}

#[test]
fn extended_data_shares_the_window() {
    let mut p = Pair::with_config(small());
    let (c, s) = p.open_session();
    assert_eq!(p.client.send_extended_data(c, 1, &[7; 600]).unwrap(), 600);
    assert_eq!(p.client.send_data(c, &[8; 600]).unwrap(), 400);
    p.pump();
    let ev = events(&mut p.server);
    let ext: usize = ev
        .iter()
        .map(|e| match e {
            ChannelEvent::ExtendedData { code: 1, data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(ext, 600);
    assert_eq!(data_of(&ev, s).len(), 400);
}

#[test]
fn megabyte_message_is_not_throttled_by_default_window() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    let data = vec![0x5a; 1 << 20];
    // The whole 1 MiB message goes out in one call, in 32 KiB packets.
    assert_eq!(p.client.send_data(c, &data).unwrap(), data.len());
    let out = payloads(&mut p.client);
    assert_eq!(out.len(), 32);
    for m in &out {
        p.server.handle_message(m).unwrap();
    }
    assert_eq!(data_of(&events(&mut p.server), s).len(), 1 << 20);
    assert_eq!(p.server.recv_window(s), 7 << 20);
}

#[test]
fn data_beyond_our_window_is_an_error() {
    let mut p = Pair::with_config(small());
    let (_, s) = p.open_session();
    let server_remote_view = s.0;
    for _ in 0..3 {
        p.server
            .handle_message(&data_msg(server_remote_view, &[0; 300]))
            .unwrap();
    }
    assert_eq!(
        p.server
            .handle_message(&data_msg(server_remote_view, &[0; 101])),
        Err(ChannelError::WindowExceeded)
    );
    assert_eq!(
        ChannelError::WindowExceeded.reason(),
        proto_ssh::msg::DisconnectReason::ProtocolError
    );
}

#[test]
fn data_above_our_max_packet_is_an_error() {
    let mut p = Pair::with_config(small());
    let (_, s) = p.open_session();
    assert_eq!(
        p.server.handle_message(&data_msg(s.0, &[0; 301])),
        Err(ChannelError::PacketTooLarge)
    );
    let mut rest = Vec::new();
    rest.put_u32(1);
    rest.put_string(&[0; 301]);
    assert_eq!(
        p.server
            .handle_message(&msg(CHANNEL_EXTENDED_DATA, s.0, &rest)),
        Err(ChannelError::PacketTooLarge)
    );
}

#[test]
fn window_adjust_past_u32_max_is_refused() {
    // CVE-2025-54804: the window must stay a uint32.
    let mut p = Pair::with_config(small());
    let (c, _) = p.open_session();
    let add = u32::MAX - 1000;
    p.client
        .handle_message(&msg(CHANNEL_WINDOW_ADJUST, c.0, &add.to_be_bytes()))
        .unwrap();
    assert_eq!(p.client.send_window(c), u32::MAX as usize);
    assert_eq!(
        p.client
            .handle_message(&msg(CHANNEL_WINDOW_ADJUST, c.0, &1u32.to_be_bytes())),
        Err(ChannelError::WindowOverflow)
    );
    // The window is left as it was.
    assert_eq!(p.client.send_window(c), u32::MAX as usize);
}

#[test]
fn writable_only_when_window_reopens_from_zero() {
    let mut p = Pair::with_config(small());
    let (c, _) = p.open_session();
    p.client
        .handle_message(&msg(CHANNEL_WINDOW_ADJUST, c.0, &5u32.to_be_bytes()))
        .unwrap();
    assert!(events(&mut p.client).is_empty());
    p.client.send_data(c, &[0; 2000]).unwrap();
    p.client
        .handle_message(&msg(CHANNEL_WINDOW_ADJUST, c.0, &5u32.to_be_bytes()))
        .unwrap();
    assert_eq!(
        events(&mut p.client),
        vec![ChannelEvent::Writable { id: c }]
    );
}

#[test]
fn consuming_more_than_received_is_refused() {
    let mut p = Pair::with_config(small());
    let (c, s) = p.open_session();
    p.client.send_data(c, &[1; 10]).unwrap();
    p.pump();
    assert_eq!(p.server.consumed(s, 11), Err(ChannelError::OverConsumed));
    p.server.consumed(s, 10).unwrap();
    assert_eq!(p.server.consumed(s, 1), Err(ChannelError::OverConsumed));
}

#[test]
fn zero_max_packet_peer_gets_nothing() {
    let mut p = Pair::with_config(ChannelConfig {
        max_packet: 0,
        ..small()
    });
    let (c, _) = p.open_session();
    assert_eq!(p.client.send_window(c), 0);
    assert_eq!(p.client.send_data(c, b"x").unwrap(), 0);
    assert!(payloads(&mut p.client).is_empty());
}

#[test]
fn empty_data_counts_nothing_and_raises_no_event() {
    let mut p = Pair::with_config(small());
    let (_, s) = p.open_session();
    p.server.handle_message(&data_msg(s.0, &[])).unwrap();
    assert!(events(&mut p.server).is_empty());
    assert_eq!(p.server.recv_window(s), 1000);
}
