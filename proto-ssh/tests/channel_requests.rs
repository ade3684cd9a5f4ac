//! Channel requests (RFC 4254 §5.4, §6) and global requests (§4, §7.1):
//! replies in request order, automatic failures, the bound port.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod channel_pair;

use channel_pair::{events, msg, payloads, Pair};
use proto_ssh::channel::{ChannelError, ChannelEvent, ChannelRequest, GlobalRequest};
use proto_ssh::msg::{
    CHANNEL_FAILURE, CHANNEL_REQUEST, CHANNEL_SUCCESS, GLOBAL_REQUEST, REQUEST_FAILURE,
    REQUEST_SUCCESS,
};
use proto_ssh::wire::{Put, WireError};

fn exec(cmd: &str) -> ChannelRequest {
    ChannelRequest::Exec(cmd.as_bytes().to_vec())
}

#[test]
fn u_root_cpu_session_sequence() {
    let mut p = Pair::new();
    p.client.global_request(
        &GlobalRequest::TcpipForward {
            address: "127.0.0.1".into(),
            port: 0,
        },
        true,
    );
    p.pump();
    assert_eq!(
        events(&mut p.server),
        vec![ChannelEvent::GlobalRequest {
            request: GlobalRequest::TcpipForward {
                address: "127.0.0.1".into(),
                port: 0
            },
            want_reply: true
        }]
    );
    p.server.reply_global(true, Some(40123)).unwrap();
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![ChannelEvent::GlobalReply {
            ok: true,
            bound_port: Some(40123)
        }]
    );

    let (c, s) = p.open_session();
    let reqs = [
        ChannelRequest::PtyReq {
            term: "ansi".into(),
            cols: 80,
            rows: 40,
            width_px: 0,
            height_px: 0,
            modes: vec![53, 0, 0, 0, 1, 0],
        },
        ChannelRequest::Env {
            name: "CPUNONCE".into(),
            value: b"00ff".to_vec(),
        },
        exec("-port9p=40123 '/bin/bash'"),
    ];
    for r in &reqs {
        p.client.send_request(c, r, true).unwrap();
    }
    p.pump();
    let got: Vec<_> = events(&mut p.server);
    let want: Vec<_> = reqs
        .iter()
        .map(|r| ChannelEvent::Request {
            id: s,
            request: r.clone(),
            want_reply: true,
        })
        .collect();
    assert_eq!(got, want);
    for ok in [true, false, true] {
        p.server.reply_request(s, ok).unwrap();
    }
    p.server
        .send_request(s, &ChannelRequest::ExitStatus(3), false)
        .unwrap();
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![
            ChannelEvent::RequestReply { id: c, ok: true },
            ChannelEvent::RequestReply { id: c, ok: false },
            ChannelEvent::RequestReply { id: c, ok: true },
            ChannelEvent::Request {
                id: c,
                request: ChannelRequest::ExitStatus(3),
                want_reply: false
            },
        ]
    );
    assert_eq!(
        p.server.reply_request(s, true),
        Err(ChannelError::NoPendingRequest)
    );
}

#[test]
fn automatic_failure_waits_behind_the_application_reply() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    p.client
        .send_request(c, &ChannelRequest::Shell, true)
        .unwrap();
    p.client
        .send_request(
            c,
            &ChannelRequest::Unknown {
                name: "x11-req".into(),
            },
            true,
        )
        .unwrap();
    p.client
        .send_request(c, &ChannelRequest::KeepAlive, true)
        .unwrap();
    p.pump();
    // Surfaced, but with nothing for the application to answer.
    let ev = events(&mut p.server);
    assert_eq!(ev.len(), 3);
    assert!(matches!(
        ev[1],
        ChannelEvent::Request {
            want_reply: false,
            ..
        }
    ));
    assert!(matches!(
        ev[2],
        ChannelEvent::Request {
            request: ChannelRequest::KeepAlive,
            want_reply: false,
            ..
        }
    ));
    // Nothing is answered before the shell request is.
    assert!(events(&mut p.client).is_empty());
    p.server.reply_request(s, true).unwrap();
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![
            ChannelEvent::RequestReply { id: c, ok: true },
            ChannelEvent::RequestReply { id: c, ok: false },
            ChannelEvent::RequestReply { id: c, ok: false },
        ]
    );
}

#[test]
fn unknown_and_keepalive_global_requests_fail_automatically() {
    let mut p = Pair::new();
    p.client.global_request(&GlobalRequest::KeepAlive, true);
    p.client.global_request(
        &GlobalRequest::Unknown {
            name: "no-more-sessions@openssh.com".into(),
        },
        true,
    );
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![
            ChannelEvent::GlobalReply {
                ok: false,
                bound_port: None
            },
            ChannelEvent::GlobalReply {
                ok: false,
                bound_port: None
            },
        ]
    );
    assert!(events(&mut p.server).iter().all(|e| matches!(
        e,
        ChannelEvent::GlobalRequest {
            want_reply: false,
            ..
        }
    )));
    assert_eq!(
        p.server.reply_global(true, None),
        Err(ChannelError::NoPendingRequest)
    );
}

#[test]
fn global_replies_keep_request_order() {
    let mut p = Pair::new();
    let fwd = |port| GlobalRequest::TcpipForward {
        address: "127.0.0.1".into(),
        port,
    };
    p.client.global_request(&fwd(0), true);
    p.client.global_request(&GlobalRequest::KeepAlive, true);
    p.client.global_request(&fwd(2222), true);
    p.client.global_request(
        &GlobalRequest::CancelTcpipForward {
            address: "127.0.0.1".into(),
            port: 2222,
        },
        true,
    );
    p.pump();
    assert!(events(&mut p.client).is_empty());
    p.server.reply_global(true, Some(5555)).unwrap();
    p.server.reply_global(false, Some(1)).unwrap();
    // A port on a cancel's success is not sent: it would be malformed.
    p.server.reply_global(true, Some(7)).unwrap();
    p.pump();
    assert_eq!(
        events(&mut p.client),
        vec![
            ChannelEvent::GlobalReply {
                ok: true,
                bound_port: Some(5555)
            },
            ChannelEvent::GlobalReply {
                ok: false,
                bound_port: None
            },
            ChannelEvent::GlobalReply {
                ok: false,
                bound_port: None
            },
            ChannelEvent::GlobalReply {
                ok: true,
                bound_port: None
            },
        ]
    );
}

#[test]
fn forward_success_port_is_optional_but_nothing_else_may_follow() {
    // gliderlabs (u-root cpud) sends the port even when one was asked for.
    let mut p = Pair::new();
    let fwd = GlobalRequest::TcpipForward {
        address: "::1".into(),
        port: 17010,
    };
    p.client.global_request(&fwd, true);
    p.client.global_request(&fwd, true);
    p.client.global_request(&fwd, true);
    payloads(&mut p.client);
    p.client.handle_message(&[REQUEST_SUCCESS]).unwrap();
    p.client
        .handle_message(&[REQUEST_SUCCESS, 0, 0, 0x42, 0x72])
        .unwrap();
    assert_eq!(
        events(&mut p.client),
        vec![
            ChannelEvent::GlobalReply {
                ok: true,
                bound_port: None
            },
            ChannelEvent::GlobalReply {
                ok: true,
                bound_port: Some(17010)
            },
        ]
    );
    assert_eq!(
        p.client
            .handle_message(&[REQUEST_SUCCESS, 0, 0, 0x42, 0x72, 0]),
        Err(ChannelError::Malformed {
            msg: REQUEST_SUCCESS,
            error: WireError::TrailingBytes
        })
    );
    assert_eq!(
        p.client.handle_message(&[REQUEST_FAILURE, 0]),
        Err(ChannelError::Malformed {
            msg: REQUEST_FAILURE,
            error: WireError::TrailingBytes
        })
    );
}

#[test]
fn unsolicited_replies_are_errors() {
    let mut p = Pair::new();
    let (c, _) = p.open_session();
    assert_eq!(
        p.client.handle_message(&[REQUEST_SUCCESS]),
        Err(ChannelError::NoPendingRequest)
    );
    assert_eq!(
        p.client.handle_message(&msg(CHANNEL_SUCCESS, c.0, &[])),
        Err(ChannelError::NoPendingRequest)
    );
    assert_eq!(
        p.client.handle_message(&msg(CHANNEL_FAILURE, c.0, &[])),
        Err(ChannelError::NoPendingRequest)
    );
}

#[test]
fn malformed_requests() {
    let mut p = Pair::new();
    let (_, s) = p.open_session();
    let req = |name: &str, data: &[u8]| {
        let mut m = Vec::new();
        m.put_string(name.as_bytes());
        m.put_bool(true);
        m.extend_from_slice(data);
        m
    };
    let mut status = Vec::new();
    status.put_u32(0);
    status.put_u8(0);
    let cases = [
        (req("exit-status", &status), WireError::TrailingBytes),
        (req("exec", &[0, 0, 0, 9, b'l']), WireError::Truncated),
        (req("shell", &[0]), WireError::TrailingBytes),
        (req("signal", &[0, 0, 0, 1, 0xff]), WireError::BadUtf8),
        (req("window-change", &[0; 15]), WireError::Truncated),
    ];
    for (body, error) in cases {
        assert_eq!(
            p.server.handle_message(&msg(CHANNEL_REQUEST, s.0, &body)),
            Err(ChannelError::Malformed {
                msg: CHANNEL_REQUEST,
                error
            })
        );
    }
    // The data of an unknown request is not ours to parse.
    p.server
        .handle_message(&msg(CHANNEL_REQUEST, s.0, &req("x11-req", &[1, 2, 3])))
        .unwrap();
    let mut g = vec![GLOBAL_REQUEST];
    g.extend_from_slice(&req("tcpip-forward", &[0, 0, 0, 0]));
    assert_eq!(
        p.server.handle_message(&g),
        Err(ChannelError::Malformed {
            msg: GLOBAL_REQUEST,
            error: WireError::Truncated
        })
    );
}

#[test]
fn requests_crossing_our_close_get_no_reply() {
    let mut p = Pair::new();
    let (c, s) = p.open_session();
    p.client.send_request(c, &exec("true"), true).unwrap();
    p.server.close(s).unwrap();
    p.pump();
    assert_eq!(events(&mut p.server), vec![ChannelEvent::Closed { id: s }]);
    assert_eq!(events(&mut p.client), vec![ChannelEvent::Closed { id: c }]);
}

#[test]
fn unknown_request_under_a_known_name_is_refused() {
    let mut p = Pair::new();
    let (c, _) = p.open_session();
    assert_eq!(
        p.client.send_request(
            c,
            &ChannelRequest::Unknown {
                name: "exec".into()
            },
            false
        ),
        Err(ChannelError::InvalidRequest)
    );
}
