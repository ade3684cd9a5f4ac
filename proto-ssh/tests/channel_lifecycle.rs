//! Opening, EOF and close (RFC 4254 §5.1, §5.3), roles, limits and
//! malformed messages.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod channel_pair;

use channel_pair::{events, msg, payloads, Pair};
use proto_ssh::channel::{
    ChannelConfig, ChannelError, ChannelEvent, ChannelId, ChannelKind, Channels,
    OPEN_ADMINISTRATIVELY_PROHIBITED, OPEN_RESOURCE_SHORTAGE, OPEN_UNKNOWN_CHANNEL_TYPE,
};
use proto_ssh::msg::{
    CHANNEL_CLOSE, CHANNEL_DATA, CHANNEL_EOF, CHANNEL_OPEN, CHANNEL_OPEN_CONFIRMATION,
    CHANNEL_OPEN_FAILURE, CHANNEL_SUCCESS, CHANNEL_WINDOW_ADJUST,
};
use proto_ssh::version::Role;
use proto_ssh::wire::{Put, Reader, WireError};

/// A CHANNEL_OPEN of type `name` from peer channel `sender`.
fn open_msg(name: &str, sender: u32, data: &[u8]) -> Vec<u8> {
    let mut m = vec![CHANNEL_OPEN];
    m.put_string(name.as_bytes());
    m.put_u32(sender);
    m.put_u32(1 << 20);
    m.put_u32(32768);
    m.extend_from_slice(data);
    m
}

fn tcpip_data() -> Vec<u8> {
    let mut d = Vec::new();
    d.put_string(b"127.0.0.1");
    d.put_u32(4000);
    d.put_string(b"10.0.0.1");
    d.put_u32(5000);
    d
}

/// The recipient and reason of an OPEN_FAILURE payload.
fn failure_of(p: &[u8]) -> (u32, u32) {
    let mut r = Reader::new(p);
    assert_eq!(r.u8().unwrap(), CHANNEL_OPEN_FAILURE);
    let recipient = r.u32().unwrap();
    let reason = r.u32().unwrap();
    r.string().unwrap();
    r.string().unwrap();
    r.finish().unwrap();
    (recipient, reason)
}

#[test]
fn session_open_accept_and_reject() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    assert!(p.client.is_open(c) && p.server.is_open(s));
    assert_eq!((p.client.len(), p.server.len()), (1, 1));

    let c2 = p.client.open_session().unwrap();
    assert_ne!(c2, c);
    assert!(!p.client.is_open(c2));
    assert_eq!(p.client.send_data(c2, b"x"), Err(ChannelError::NotOpen));
    p.pump();
    let Some(ChannelEvent::OpenRequest { id: s2, kind }) = p.server.poll_event() else {
        panic!("no open request")
    };
    assert_eq!(kind, ChannelKind::Session);
    p.server.reject_open(s2, 2, "no").unwrap();
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![ChannelEvent::OpenFailed {
            id: c2,
            reason: 2,
            description: "no".into()
        }]
    );
    assert_eq!((p.client.len(), p.server.len()), (1, 1));
    assert_eq!(
        p.server.accept_open(s2),
        Err(ChannelError::UnknownChannel(s2.0))
    );
    assert_eq!(p.server.accept_open(s), Err(ChannelError::NotOffered));
}

#[test]
fn tcpip_opens_follow_roles() {
    let mut p = Pair::new();
    // direct-tcpip: client to server.
    let c = p
        .client
        .open_direct_tcpip("127.0.0.1", 4000, "10.0.0.1", 5000)
        .unwrap();
    p.pump();
    let ev = events(&mut p.server);
    let [ChannelEvent::OpenRequest { id, kind }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        *kind,
        ChannelKind::DirectTcpip {
            host: "127.0.0.1".into(),
            port: 4000,
            orig_host: "10.0.0.1".into(),
            orig_port: 5000
        }
    );
    p.server.accept_open(*id).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![ChannelEvent::Opened { id: c }]);

    // forwarded-tcpip: server to client.
    let s = p
        .server
        .open_forwarded_tcpip("127.0.0.1", 4000, "127.0.0.1", 6000)
        .unwrap();
    p.pump();
    let ev = events(&mut p.client);
    let [ChannelEvent::OpenRequest { id, kind }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(matches!(
        kind,
        ChannelKind::ForwardedTcpip {
            connected_port: 4000,
            orig_port: 6000,
            ..
        }
    ));
    p.client.accept_open(*id).unwrap();
    p.pump();
    assert_eq!(events(&mut p.server), vec![ChannelEvent::Opened { id: s }]);
}

#[test]
fn wrong_role_opens_are_prohibited_without_an_event() {
    let cases = [
        (Role::Client, "session", vec![]),
        (Role::Client, "direct-tcpip", tcpip_data()),
        (Role::Server, "forwarded-tcpip", tcpip_data()),
    ];
    for (role, name, data) in cases {
        let side = &mut Channels::new(role, ChannelConfig::default());
        side.handle_message(&open_msg(name, 77, &data)).unwrap();
        let out = payloads(side);
        assert_eq!(out.len(), 1, "{name}");
        assert_eq!(failure_of(&out[0]), (77, OPEN_ADMINISTRATIVELY_PROHIBITED));
        assert!(side.poll_event().is_none());
        assert!(side.is_empty());
    }
}

#[test]
fn unknown_channel_type_is_refused() {
    let mut server = Channels::new(Role::Server, ChannelConfig::default());
    server
        .handle_message(&open_msg("x11", 5, b"whatever follows"))
        .unwrap();
    let out = payloads(&mut server);
    assert_eq!(failure_of(&out[0]), (5, OPEN_UNKNOWN_CHANNEL_TYPE));
    assert!(server.poll_event().is_none());
}

#[test]
fn opens_beyond_max_channels_are_a_resource_shortage() {
    let config = ChannelConfig {
        max_channels: 2,
        ..ChannelConfig::default()
    };
    let mut server = Channels::new(Role::Server, config);
    for sender in 0..3 {
        server
            .handle_message(&open_msg("session", sender, &[]))
            .unwrap();
    }
    let out = payloads(&mut server);
    assert_eq!(out.len(), 1);
    assert_eq!(failure_of(&out[0]), (2, OPEN_RESOURCE_SHORTAGE));
    assert_eq!(events(&mut server).len(), 2);
    assert_eq!(server.open_session(), Err(ChannelError::TooManyChannels));
}

#[test]
fn eof_then_close_from_both_sides() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    p.client.send_data(c, b"in").unwrap();
    p.client.send_eof(c).unwrap();
    // Idempotent, and no more data after it.
    p.client.send_eof(c).unwrap();
    assert_eq!(p.client.send_data(c, b"x"), Err(ChannelError::DataAfterEof));
    p.pump();
    let ev = events(&mut p.server);
    assert_eq!(ev.last(), Some(&ChannelEvent::Eof { id: s }));
    // The server may still send after the client's EOF.
    p.server.send_data(s, b"out").unwrap();
    p.server.close(s).unwrap();
    assert_eq!(p.server.send_data(s, b"x"), Err(ChannelError::AfterClose));
    assert!(!p.server.is_open(s));
    // Closed only once both CLOSEs crossed: the server's comes back.
    assert!(events(&mut p.server).is_empty());
    p.pump();
    let ev = events(&mut p.client);
    assert_eq!(ev.last(), Some(&ChannelEvent::Closed { id: c }));
    assert_eq!(events(&mut p.server), vec![ChannelEvent::Closed { id: s }]);
    assert!(p.client.is_empty() && p.server.is_empty());
    // The ids are free: anything for them is an unknown channel.
    assert_eq!(
        p.client.handle_message(&msg(CHANNEL_EOF, c.0, &[])),
        Err(ChannelError::UnknownChannel(c.0))
    );
    assert_eq!(
        p.client.send_data(c, b"x"),
        Err(ChannelError::UnknownChannel(c.0))
    );
    // A new channel does not reuse the freed id.
    let (c2, s2) = p.open_session();
    assert_ne!(c2, c);
    assert_ne!(s2, s);
}

#[test]
fn crossing_closes_free_both_sides() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    p.client.close(c).unwrap();
    p.server.close(s).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![ChannelEvent::Closed { id: c }]);
    assert_eq!(events(&mut p.server), vec![ChannelEvent::Closed { id: s }]);
}

#[test]
fn data_crossing_our_close_is_dropped() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    p.server.send_data(s, b"late").unwrap();
    p.client.close(c).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![ChannelEvent::Closed { id: c }]);
}

#[test]
fn peer_data_after_its_eof_is_an_error() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    p.server.send_eof(s).unwrap();
    p.pump();
    let mut d = Vec::new();
    d.put_string(b"x");
    assert_eq!(
        p.client.handle_message(&msg(CHANNEL_DATA, c.0, &d)),
        Err(ChannelError::DataAfterEof)
    );
    assert_eq!(
        p.client.handle_message(&msg(CHANNEL_EOF, c.0, &[])),
        Err(ChannelError::DuplicateEof)
    );
}

#[test]
fn close_while_opening_is_sent_on_confirmation() {
    let mut p = Pair::new();
    let c = p.client.open_session().unwrap();
    p.client.close(c).unwrap();
    p.pump();
    let Some(ChannelEvent::OpenRequest { id: s, .. }) = p.server.poll_event() else {
        panic!()
    };
    p.server.accept_open(s).unwrap();
    p.pump();
    assert_eq!(events(&mut p.client), vec![ChannelEvent::Closed { id: c }]);
    assert_eq!(events(&mut p.server), vec![ChannelEvent::Closed { id: s }]);
}

#[test]
fn open_replies_only_for_channels_we_are_opening() {
    let mut p = Pair::new();
    let (c, _) = p.open_session();
    let mut conf = Vec::new();
    conf.put_u32(9);
    conf.put_u32(100);
    conf.put_u32(100);
    assert_eq!(
        p.client
            .handle_message(&msg(CHANNEL_OPEN_CONFIRMATION, c.0, &conf)),
        Err(ChannelError::UnexpectedOpenReply(c.0))
    );
    assert_eq!(
        p.client
            .handle_message(&msg(CHANNEL_OPEN_CONFIRMATION, 999, &conf)),
        Err(ChannelError::UnknownChannel(999))
    );
    let mut fail = Vec::new();
    fail.put_u32(1);
    fail.put_string(b"");
    fail.put_string(b"");
    assert_eq!(
        p.client
            .handle_message(&msg(CHANNEL_OPEN_FAILURE, c.0, &fail)),
        Err(ChannelError::UnexpectedOpenReply(c.0))
    );
    // A channel the peer offered and we did not accept is not open.
    p.server
        .handle_message(&open_msg("session", 3, &[]))
        .unwrap();
    let Some(ChannelEvent::OpenRequest { id, .. }) = p.server.poll_event() else {
        panic!()
    };
    assert_eq!(
        p.server.handle_message(&msg(CHANNEL_EOF, id.0, &[])),
        Err(ChannelError::NotOpen)
    );
}

#[test]
fn trailing_and_truncated_messages_are_malformed() {
    let mut p = Pair::new();
    let (c, _) = p.open_session();
    let cases: Vec<(u8, Vec<u8>, WireError)> = vec![
        (
            CHANNEL_EOF,
            msg(CHANNEL_EOF, c.0, &[0]),
            WireError::TrailingBytes,
        ),
        (
            CHANNEL_CLOSE,
            msg(CHANNEL_CLOSE, c.0, &[1, 2]),
            WireError::TrailingBytes,
        ),
        (
            CHANNEL_SUCCESS,
            msg(CHANNEL_SUCCESS, c.0, &[0]),
            WireError::TrailingBytes,
        ),
        (
            CHANNEL_WINDOW_ADJUST,
            msg(CHANNEL_WINDOW_ADJUST, c.0, &[0, 0, 1]),
            WireError::Truncated,
        ),
        (
            CHANNEL_DATA,
            msg(CHANNEL_DATA, c.0, &[0xff, 0xff, 0xff, 0xff, 1]),
            WireError::Truncated,
        ),
        (
            CHANNEL_DATA,
            msg(CHANNEL_DATA, c.0, &[0, 0, 0, 1, 9, 9]),
            WireError::TrailingBytes,
        ),
        (
            CHANNEL_OPEN,
            open_msg("session", 1, &[0]),
            WireError::TrailingBytes,
        ),
        (
            CHANNEL_OPEN,
            open_msg("direct-tcpip", 1, &[0, 0]),
            WireError::Truncated,
        ),
    ];
    for (n, m, error) in cases {
        assert_eq!(
            p.client.handle_message(&m),
            Err(ChannelError::Malformed { msg: n, error }),
            "{m:?}"
        );
    }
    assert_eq!(
        p.client.handle_message(&[]),
        Err(ChannelError::Malformed {
            msg: 0,
            error: WireError::Truncated
        })
    );
    assert_eq!(
        p.client.handle_message(&[85]),
        Err(ChannelError::UnknownMessage(85))
    );
    // Nothing above broke the channel.
    assert!(p.client.is_open(c));
}

#[test]
fn unknown_ids_are_errors_for_the_api_too() {
    let mut p = Pair::new();
    let id = ChannelId(42);
    assert_eq!(p.client.send_eof(id), Err(ChannelError::UnknownChannel(42)));
    assert_eq!(p.client.close(id), Err(ChannelError::UnknownChannel(42)));
    assert_eq!(
        p.client.consumed(id, 0),
        Err(ChannelError::UnknownChannel(42))
    );
    assert_eq!(p.client.send_window(id), 0);
    assert!(!p.client.is_open(id));
}
