//! The router and dispatcher end to end over a fake [`JsonPeer`] that records the frames it
//! is given: every answer is compared as exact JSON (the `t` timestamp aside), inside the
//! engine's runtime so that awaiting handlers, the timeout and cancellation are real.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::*;
use crate::auth::Identity;
use crate::rt;

#[derive(Default)]
struct FakePeer {
    /// `send_text` fails, as on a connection the server has closed.
    refuse: Cell<bool>,
    sent: RefCell<Vec<String>>,
    identity: RefCell<Option<Rc<Identity>>>,
    closed: RefCell<Option<(u16, String)>>,
    rooms: RefCell<Vec<String>>,
    broadcasts: RefCell<Vec<(String, String, bool)>>,
}

impl JsonPeer for FakePeer {
    fn connection_id(&self) -> u64 {
        7
    }

    fn send_text(&self, frame: Bytes) -> Result<(), PeerClosed> {
        if self.refuse.get() {
            return Err(PeerClosed);
        }
        let text = String::from_utf8(frame.to_vec()).expect("frames are UTF-8");
        self.sent.borrow_mut().push(text);
        Ok(())
    }

    fn close(&self, code: u16, reason: &str) {
        *self.closed.borrow_mut() = Some((code, reason.to_owned()));
    }

    fn identity(&self) -> Option<Rc<Identity>> {
        self.identity.borrow().clone()
    }

    fn join(&self, room: &str) -> Result<(), HandlerError> {
        if room == "full" {
            return Err(HandlerError::new(1011, "Room is full"));
        }
        self.rooms.borrow_mut().push(room.to_owned());
        Ok(())
    }

    fn leave(&self, room: &str) -> bool {
        let mut rooms = self.rooms.borrow_mut();
        let before = rooms.len();
        rooms.retain(|r| r != room);
        rooms.len() != before
    }

    fn broadcast_to_room(&self, room: &str, frame: Bytes, exclude_self: bool) -> usize {
        let text = String::from_utf8(frame.to_vec()).expect("frames are UTF-8");
        self.broadcasts
            .borrow_mut()
            .push((room.to_owned(), text, exclude_self));
        3
    }
}

impl FakePeer {
    /// The frames sent since the last call, parsed, each checked to carry an integer `t`
    /// (then removed).
    fn take(&self) -> Vec<Value> {
        self.sent
            .borrow_mut()
            .drain(..)
            .map(|text| without_t(&text))
            .collect()
    }
}

fn without_t(text: &str) -> Value {
    let mut value: Value = serde_json::from_str(text).expect("a frame is JSON");
    let object = value.as_object_mut().expect("a frame is an object");
    assert!(object.remove("t").is_some_and(|t| t.is_u64()), "{text}");
    value
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    rt::Driver::Auto.block_on(64, test).expect("runtime");
}

fn setup(router: JsonRouter, config: DispatchConfig) -> (Rc<FakePeer>, JsonDispatcher) {
    let peer = Rc::new(FakePeer::default());
    let dispatcher = JsonDispatcher::new(Arc::new(router), peer.clone(), config);
    (peer, dispatcher)
}

#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    text: String,
}

async fn echo(_ctx: JsonContext, payload: Echo) -> Result<Echo, HandlerError> {
    Ok(payload)
}

async fn slow(_ctx: JsonContext, payload: Value) -> Result<Value, HandlerError> {
    let ms = payload["ms"].as_u64().unwrap_or(50);
    rt::sleep(Duration::from_millis(ms)).await;
    Ok(json!({"slept": ms}))
}

fn sleep_ms(ms: u64) -> impl std::future::Future<Output = ()> {
    rt::sleep(Duration::from_millis(ms))
}

// ---- routing, replies ----

#[test]
fn echo_is_auto_replied_with_c_and_v_in_key_order() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("echo", echo);
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"echo","p":{"text":"hi"},"c":"1"}"#);
        let raw = peer.sent.borrow()[0].clone();
        assert!(
            raw.starts_with(r#"{"v":"1.0","e":"echo.response","p":{"text":"hi"},"c":"1","t":"#),
            "{raw}"
        );
        assert_eq!(
            peer.take(),
            [json!({"v":"1.0","e":"echo.response","p":{"text":"hi"},"c":"1"})]
        );
        // No `c`: still answered (clients listen for `<event>.response`), without `c`.
        dispatcher.received(r#"{"e":"echo","p":{"text":"x"}}"#);
        assert_eq!(
            peer.take(),
            [json!({"v":"1.0","e":"echo.response","p":{"text":"x"}})]
        );
        assert_eq!(dispatcher.pending(), 0);
    });
}

#[test]
fn lists_and_scalars_are_wrapped_and_unit_sends_nothing() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("list", |_ctx, _p: Value| async { Ok(vec![1, 2, 3]) });
        router.on("scalar", |_ctx, _p: Value| async { Ok("done") });
        router.on("none", |_ctx, _p: Value| async { Ok(()) });
        router.on("maybe", |_ctx, _p: Value| async { Ok(None::<Echo>) });
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        for event in ["list", "scalar", "none", "maybe"] {
            dispatcher.received(&format!(r#"{{"e":"{event}","c":"{event}"}}"#));
        }
        assert_eq!(
            peer.take(),
            [
                json!({"v":"1.0","e":"list.response","p":{"data":[1,2,3]},"c":"list"}),
                json!({"v":"1.0","e":"scalar.response","p":{"data":"done"},"c":"scalar"}),
            ]
        );
    });
}

#[test]
fn versions_route_exact_then_default_then_nearest() {
    run(async {
        let config = EnvelopeConfig::new("1.0")
            .support("0.9")
            .support("1.5")
            .support("2.0")
            .support("3.0");
        let mut router = JsonRouter::new(config);
        router.on("v", |_ctx, _p: Value| async { Ok(json!({"h": "default"})) });
        router.on_version("v", "2.0", |_ctx, _p: Value| async {
            Ok(json!({"h": "2.0"}))
        });
        router.on_version("w", "1.0", |_ctx, _p: Value| async {
            Ok(json!({"h": "1.0"}))
        });
        router.on_version("w", "3.0", |_ctx, _p: Value| async {
            Ok(json!({"h": "3.0"}))
        });
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        let cases = [
            ("v", "2.0", "2.0"),
            ("v", "1.5", "default"),
            ("v", "3.0", "default"),
            ("w", "1.0", "1.0"),
            ("w", "2.0", "1.0"),
            ("w", "3.0", "3.0"),
            ("w", "0.9", "1.0"),
        ];
        for (event, version, _) in cases {
            dispatcher.received(&format!(r#"{{"e":"{event}","v":"{version}"}}"#));
        }
        let expected: Vec<Value> = cases
            .iter()
            .map(|(event, version, handler)| {
                json!({"v": version, "e": format!("{event}.response"), "p": {"h": handler}})
            })
            .collect();
        assert_eq!(peer.take(), expected);
    });
}

#[test]
#[should_panic(expected = "already has a handler")]
fn registering_an_event_twice_panics() {
    let mut router = JsonRouter::default();
    router.on("echo", echo);
    router.on("echo", echo);
}

#[test]
fn unknown_events_get_1008_or_the_not_found_handler() {
    run(async {
        let (peer, dispatcher) = setup(JsonRouter::default(), DispatchConfig::default());
        dispatcher.received(r#"{"e":"nope","c":"9"}"#);
        assert_eq!(
            peer.take(),
            [json!({"v":"1.0","e":"sys.error","c":"9",
                "p":{"code":1008,"message":"Handler not found for event: nope"}})]
        );

        let mut router = JsonRouter::default();
        router.not_found(|ctx: JsonContext, p: Value| async move {
            Ok(json!({"unknown": ctx.event(), "p": p}))
        });
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"nope","p":{"a":1},"c":"9"}"#);
        assert_eq!(
            peer.take(),
            [json!({"v":"1.0","e":"nope.response","c":"9",
                "p":{"unknown":"nope","p":{"a":1}}})]
        );
    });
}

#[test]
fn refused_envelopes_are_answered_with_their_c() {
    run(async {
        let (peer, dispatcher) = setup(JsonRouter::default(), DispatchConfig::default());
        dispatcher.received(r#"{"c":"1","e":"#);
        dispatcher.received(r#"{"e":"x","v":"9.9","c":"2"}"#);
        assert_eq!(
            peer.take(),
            [
                json!({"v":"1.0","e":"sys.error","c":"1","p":{"code":1001,
                    "message":"Invalid JSON format","details":{"reason":"invalid_json"}}}),
                json!({"v":"1.0","e":"sys.error","c":"2","p":{"code":1002,
                    "message":"Unsupported protocol version: 9.9",
                    "details":{"version":"9.9","supported":["1.0"]}}}),
            ]
        );
    });
}

// ---- middleware, auth, payloads ----

#[test]
fn middleware_runs_in_order_and_can_stop_or_answer() {
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut router = JsonRouter::default();
        let first = log.clone();
        router.middleware(move |ctx: JsonContext, next: Next| {
            let log = first.clone();
            async move {
                log.lock().unwrap().push(format!("1:{}", ctx.event()));
                // Async middleware: waits before going on.
                sleep_ms(1).await;
                let outcome = next.run(ctx).await;
                // What the rest answered, as a metrics middleware would see it.
                let code = outcome.as_ref().err().map(HandlerError::wire_code);
                log.lock().unwrap().push(format!("1:after:{code:?}"));
                outcome
            }
        });
        let second = log.clone();
        router.middleware(move |ctx: JsonContext, next: Next| {
            let log = second.clone();
            async move {
                log.lock().unwrap().push(format!("2:{}", ctx.event()));
                ctx.set_extra(String::from("from middleware"));
                ctx.set_extra(2_u8);
                ctx.set_extra(String::from("from the second middleware"));
                match ctx.event() {
                    "blocked" => Err(HandlerError::new(4001, "Blocked by policy")),
                    "flood" => Err(HandlerError::rate_limited(1500)),
                    "silent" => Ok(()),
                    _ => next.run(ctx).await,
                }
            }
        });
        let handler_log = log.clone();
        router.on("echo", move |ctx: JsonContext, p: Echo| {
            handler_log
                .lock()
                .unwrap()
                .push(format!("h:{}", ctx.event()));
            async move { Ok(p) }
        });
        assert!(router.has_handler("echo") && !router.has_handler("unknown"));
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        for text in [
            r#"{"e":"echo","p":{"text":"a"},"c":"1"}"#,
            r#"{"e":"blocked","c":"2"}"#,
            r#"{"e":"silent","c":"3"}"#,
            r#"{"e":"flood","c":"5"}"#,
            r#"{"e":"unknown","c":"4"}"#,
        ] {
            dispatcher.received(text);
        }
        sleep_ms(30).await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "1:echo",
                "2:echo",
                "h:echo",
                "1:after:None",
                "1:blocked",
                "2:blocked",
                "1:after:Some(4001)",
                "1:silent",
                "2:silent",
                "1:after:None",
                "1:flood",
                "2:flood",
                "1:after:Some(1010)",
                "1:unknown",
                "2:unknown",
                "1:after:Some(1008)",
            ]
        );
        assert_eq!(
            peer.take(),
            [
                json!({"v":"1.0","e":"echo.response","p":{"text":"a"},"c":"1"}),
                json!({"v":"1.0","e":"sys.error","p":{"code":4001,"message":"Blocked by policy"},"c":"2"}),
                json!({"v":"1.0","e":"sys.error","c":"5","p":{"code":1010,
                    "message":"Rate limit exceeded","details":{"retryAfterMs":1500},
                    "retryAfterMs":1500}}),
                json!({"v":"1.0","e":"sys.error","c":"4",
                    "p":{"code":1008,"message":"Handler not found for event: unknown"}}),
            ]
        );
    });
}

#[test]
fn requires_auth_answers_1003_until_the_connection_has_an_identity() {
    run(async {
        let mut router = JsonRouter::default();
        router
            .on("whoami", |ctx: JsonContext, _p: Value| async move {
                Ok(json!({"user": ctx.user()}))
            })
            .requires_auth();
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"whoami","c":"1"}"#);
        *peer.identity.borrow_mut() = Some(Rc::new(Identity::user("ada")));
        dispatcher.received(r#"{"e":"whoami","c":"2"}"#);
        assert_eq!(
            peer.take(),
            [
                json!({"v":"1.0","e":"sys.error","c":"1",
                    "p":{"code":1003,"message":"Authentication required"}}),
                json!({"v":"1.0","e":"whoami.response","c":"2","p":{"user":"ada"}}),
            ]
        );
    });
}

#[test]
fn bad_payloads_get_1009_with_the_field_and_reason() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("echo", echo);
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"echo","p":{},"c":"1"}"#);
        dispatcher.received(r#"{"e":"echo","p":{"text":5},"c":"2"}"#);
        assert_eq!(
            peer.take(),
            [
                json!({"v":"1.0","e":"sys.error","c":"1","p":{"code":1009,
                    "message":"Validation failed for field: text",
                    "details":{"errors":[{"field":"text","reason":"missing field `text`"}]}}}),
                json!({"v":"1.0","e":"sys.error","c":"2","p":{"code":1009,
                    "message":"Validation failed for field: text",
                    "details":{"errors":[{"field":"text",
                        "reason":"invalid type: integer `5`, expected a string"}]}}}),
            ]
        );
    });
}

// ---- errors and panics ----

/// A 1500 answer's error id: 16 hex digits.
fn assert_internal(frame: &Value, c: &str, message: &str) {
    assert_eq!(frame["e"], "sys.error");
    assert_eq!(frame["c"], c);
    assert_eq!(frame["p"]["code"], 1500);
    assert_eq!(frame["p"]["message"], message);
    let id = frame["p"]["details"]["errorId"]
        .as_str()
        .expect("an error id");
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
}

#[test]
fn handler_errors_map_to_their_code_and_others_to_1500_without_text() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("app", |_ctx, _p: Value| async {
            Err::<(), _>(HandlerError::new(4100, "Not your turn").with_details(&json!({"turn": 3})))
        });
        router.on("code", |_ctx, _p: Value| async {
            Err::<(), _>(ErrorCode::Forbidden.into())
        });
        router.on("io", |_ctx, _p: Value| async {
            let value: u32 = "secret-text".parse()?;
            Ok(value)
        });
        router.on("boom", |_ctx, _p: Value| async {
            sleep_ms(1).await;
            panic!("secret panic text");
            #[allow(unreachable_code)]
            Ok(())
        });
        router.on(
            "boom_sync",
            |_ctx, _p: Value| -> std::future::Ready<Result<(), HandlerError>> {
                panic!("secret panic text")
            },
        );
        router.on("echo", echo);
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        for (event, c) in [
            ("app", "1"),
            ("code", "2"),
            ("io", "3"),
            ("boom", "4"),
            ("boom_sync", "5"),
        ] {
            dispatcher.received(&format!(r#"{{"e":"{event}","c":"{c}"}}"#));
        }
        dispatcher.received(r#"{"e":"echo","p":{"text":"still here"},"c":"6"}"#);
        sleep_ms(20).await;
        for text in peer.sent.borrow().iter() {
            assert!(!text.contains("secret"), "{text}");
        }
        let frames = peer.take();
        assert_eq!(frames.len(), 6);
        assert_eq!(
            frames[0],
            json!({"v":"1.0","e":"sys.error","c":"1",
                "p":{"code":4100,"message":"Not your turn","details":{"turn":3}}})
        );
        assert_eq!(
            frames[1],
            json!({"v":"1.0","e":"sys.error","c":"2","p":{"code":1012,"message":"Forbidden"}})
        );
        assert_internal(&frames[2], "3", "Internal server error");
        assert_internal(&frames[3], "4", "Internal server error");
        assert_internal(&frames[4], "5", "Internal server error");
        assert_eq!(
            frames[5],
            json!({"v":"1.0","e":"echo.response","c":"6","p":{"text":"still here"}})
        );
    });
}

// ---- ordering, limits, cancellation ----

#[test]
fn messages_run_in_order_even_when_the_first_waits() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("slow", slow);
        router.on("echo", echo);
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"slow","p":{"ms":30},"c":"1"}"#);
        dispatcher.received(r#"{"e":"echo","p":{"text":"second"},"c":"2"}"#);
        assert_eq!(dispatcher.pending(), 2);
        sleep_ms(5).await;
        assert!(peer.take().is_empty(), "the second waits for the first");
        sleep_ms(60).await;
        assert_eq!(
            peer.take(),
            [
                json!({"v":"1.0","e":"slow.response","c":"1","p":{"slept":30}}),
                json!({"v":"1.0","e":"echo.response","c":"2","p":{"text":"second"}}),
            ]
        );
        assert_eq!(dispatcher.pending(), 0);
    });
}

#[test]
fn concurrency_lets_a_fast_message_pass_a_slow_one() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("slow", slow);
        router.on("echo", echo);
        let (peer, dispatcher) = setup(router, DispatchConfig::default().concurrency(2));
        dispatcher.received(r#"{"e":"slow","p":{"ms":30},"c":"1"}"#);
        dispatcher.received(r#"{"e":"slow","p":{"ms":10},"c":"2"}"#);
        dispatcher.received(r#"{"e":"echo","p":{"text":"third"},"c":"3"}"#);
        sleep_ms(70).await;
        let order: Vec<Value> = peer.take().into_iter().map(|f| f["c"].clone()).collect();
        // Two run at once; the third waits for a free slot (the 10 ms one's).
        assert_eq!(order, [json!("2"), json!("3"), json!("1")]);
    });
}

#[test]
fn a_full_queue_answers_1010_at_once() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("slow", slow);
        let (peer, dispatcher) = setup(router, DispatchConfig::default().max_queued(2));
        for c in 1..=4 {
            dispatcher.received(&format!(r#"{{"e":"slow","p":{{"ms":5}},"c":"{c}"}}"#));
        }
        assert_eq!(
            peer.take(),
            [json!({"v":"1.0","e":"sys.error","c":"4","p":{"code":1010,
                "message":"Too many pending messages",
                "details":{"reason":"too_many_pending","limit":2}}})]
        );
        assert_eq!(dispatcher.pending(), 3);
        sleep_ms(50).await;
        let order: Vec<Value> = peer.take().into_iter().map(|f| f["c"].clone()).collect();
        assert_eq!(order, [json!("1"), json!("2"), json!("3")]);
    });
}

#[test]
fn a_handler_past_its_timeout_is_answered_and_the_next_runs() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("slow", slow);
        router.on("echo", echo);
        let config = DispatchConfig::default().handler_timeout(Some(Duration::from_millis(20)));
        let (peer, dispatcher) = setup(router, config);
        dispatcher.received(r#"{"e":"slow","p":{"ms":10000},"c":"1"}"#);
        dispatcher.received(r#"{"e":"echo","p":{"text":"next"},"c":"2"}"#);
        sleep_ms(60).await;
        let frames = peer.take();
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_internal(&frames[0], "1", "Handler timed out");
        assert_eq!(frames[0]["p"]["details"]["reason"], "timeout");
        assert_eq!(
            frames[1],
            json!({"v":"1.0","e":"echo.response","c":"2","p":{"text":"next"}})
        );
    });
}

/// Sets its flag when dropped: proves a cancelled handler's future is gone.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

thread_local! {
    static DROPPED: Rc<Cell<bool>> = Rc::new(Cell::new(false));
}

#[test]
fn close_cancels_running_and_queued_handlers() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("long", |ctx: JsonContext, _p: Value| async move {
            let _flag = DropFlag(DROPPED.with(Rc::clone));
            sleep_ms(30).await;
            ctx.reply(&json!({"late": true}))?;
            Ok(())
        });
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"long","c":"1"}"#);
        dispatcher.received(r#"{"e":"long","c":"2"}"#);
        sleep_ms(5).await;
        dispatcher.close();
        assert_eq!(dispatcher.pending(), 1, "the queued one is gone");
        sleep_ms(1).await;
        assert!(DROPPED.with(|d| d.get()), "the running handler was dropped");
        assert_eq!(dispatcher.pending(), 0);
        dispatcher.received(r#"{"e":"long","c":"3"}"#);
        drop(dispatcher);
        sleep_ms(60).await;
        assert!(peer.take().is_empty());
    });
}

#[test]
fn dropping_the_dispatcher_cancels_too() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("slow", slow);
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"slow","p":{"ms":20},"c":"1"}"#);
        drop(dispatcher);
        sleep_ms(50).await;
        assert!(peer.take().is_empty());
    });
}

// ---- the context's sends ----

#[test]
fn context_sends_carry_the_right_version_and_c() {
    run(async {
        let config = EnvelopeConfig::new("1.0").support("2.0");
        let mut router = JsonRouter::new(config);
        router.on("act", |ctx: JsonContext, _p: Value| async move {
            ctx.emit("act.progress", &json!({"pct": 50}))?;
            ctx.send("server.notice", &json!({"n": 1}))?;
            ctx.reply(&json!({"ok": true}))?;
            ctx.error(4200, "Also an error")?;
            ctx.join("lobby")?;
            assert_eq!(
                ctx.broadcast_to_room("lobby", "chat", &json!({"m": "hi"}), true)?,
                3
            );
            assert!(ctx.leave("lobby"));
            assert!(!ctx.leave("lobby"));
            ctx.join("full")?;
            Ok(())
        });
        router.on("bye", |ctx: JsonContext, _p: Value| async move {
            ctx.close(4000, "bye");
            Ok(())
        });
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"act","v":"2.0","c":"q"}"#);
        assert_eq!(
            peer.take(),
            [
                json!({"v":"2.0","e":"act.progress","p":{"pct":50}}),
                json!({"v":"1.0","e":"server.notice","p":{"n":1}}),
                json!({"v":"2.0","e":"act.response","p":{"ok":true},"c":"q"}),
                json!({"v":"2.0","e":"sys.error","p":{"code":4200,"message":"Also an error"},"c":"q"}),
                json!({"v":"2.0","e":"sys.error","p":{"code":1011,"message":"Room is full"},"c":"q"}),
            ]
        );
        let broadcasts = peer.broadcasts.borrow();
        assert_eq!(broadcasts.len(), 1);
        assert_eq!(broadcasts[0].0, "lobby");
        assert!(broadcasts[0].2);
        assert_eq!(
            without_t(&broadcasts[0].1),
            json!({"v":"1.0","e":"chat","p":{"m":"hi"}})
        );
        dispatcher.received(r#"{"e":"bye"}"#);
        assert_eq!(*peer.closed.borrow(), Some((4000, "bye".to_owned())));
    });
}

#[test]
fn the_router_can_be_shared_by_every_shard() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    let mut router = JsonRouter::default();
    router.on("echo", echo);
    shared(&Arc::new(router));
}

#[test]
fn a_peer_that_refuses_frames_ends_handlers_quietly() {
    run(async {
        let mut router = JsonRouter::default();
        router.on("emit", |ctx: JsonContext, _p: Value| async move {
            ctx.emit("x", &json!({}))?;
            Ok(json!({"unreachable": true}))
        });
        router.on("slow", slow);
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        peer.refuse.set(true);
        dispatcher.received(r#"{"e":"emit","c":"1"}"#);
        dispatcher.received(r#"{"e":"slow","p":{"ms":5},"c":"2"}"#);
        dispatcher.received("not json");
        sleep_ms(30).await;
        assert_eq!(dispatcher.pending(), 0);
        peer.refuse.set(false);
        assert!(peer.take().is_empty());
    });
}

// ---- schema, controllers, off ----

#[test]
fn a_schema_is_checked_in_order_after_auth_and_before_the_handler() {
    run(async {
        let mut router = JsonRouter::default();
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        router
            .on("move", |_, p: Value| async move { Ok(p) })
            .schema(
                Schema::new()
                    .field("x", "an integer from 0 to 9", |v| {
                        v.as_u64().is_some_and(|x| x < 10)
                    })
                    .field("y", "an integer from 0 to 9", |v| {
                        v.as_u64().is_some_and(|y| y < 10)
                    }),
            );
        router
            .on("admin", |_, _: Value| async { Ok(()) })
            .requires_auth()
            .schema(Schema::new().field("x", "any", |_| panic!("not reached")));
        router
            .on("broken", |_, _: Value| async { Ok(()) })
            .schema(Schema::new().field("x", "any", |_| panic!("a bug in a check")));
        let counted = ran.clone();
        router
            .on("typed", move |_, p: Echo| {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move { Ok(p) }
            })
            .schema(Schema::new().field("text", "at most 3 characters", |v| {
                v.as_str().is_some_and(|s| s.len() <= 3)
            }));
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"move","p":{"x":1,"y":2},"c":"ok"}"#);
        dispatcher.received(r#"{"e":"move","p":{"x":10,"y":20},"c":"x"}"#);
        dispatcher.received(r#"{"e":"move","p":{"x":1},"c":"y"}"#);
        dispatcher.received(r#"{"e":"admin","p":{},"c":"auth"}"#);
        dispatcher.received(r#"{"e":"typed","p":{"text":"long"},"c":"t"}"#);
        let invalid = |c: &str, field: &str, reason: &str| {
            json!({"v":"1.0","e":"sys.error","c":c,"p":{"code":1009,
                "message":format!("Validation failed for field: {field}"),
                "details":{"errors":[{"field":field,"reason":reason}]}}})
        };
        assert_eq!(
            peer.take(),
            [
                json!({"v":"1.0","e":"move.response","p":{"x":1,"y":2},"c":"ok"}),
                invalid("x", "x", "an integer from 0 to 9"),
                invalid("y", "y", "an integer from 0 to 9"),
                json!({"v":"1.0","e":"sys.error","c":"auth","p":{"code":1003,
                    "message":"Authentication required"}}),
                invalid("t", "text", "at most 3 characters"),
            ]
        );
        assert_eq!(
            ran.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "a failed schema stops the handler"
        );
        dispatcher.received(r#"{"e":"broken","p":{},"c":"b"}"#);
        let sent = peer.take();
        assert_internal(&sent[0], "b", "Internal server error");
    });
}

#[test]
fn controllers_register_their_handlers_and_off_removes_an_event() {
    struct Lobby;
    impl JsonController for Lobby {
        fn register(&self, router: &mut JsonRouter) {
            router.on("lobby.list", |_, _: Value| async {
                Ok(json!({"rooms": []}))
            });
            router.on_version("lobby.join", "1.0", |_, _: Value| async { Ok(()) });
        }
    }
    run(async {
        let mut router = JsonRouter::default();
        router.controller(&Lobby);
        assert!(router.has_handler("lobby.list") && router.has_handler("lobby.join"));
        assert!(router.off("lobby.join"));
        assert!(!router.off("lobby.join"));
        assert!(!router.has_handler("lobby.join"));
        let (peer, dispatcher) = setup(router, DispatchConfig::default());
        dispatcher.received(r#"{"e":"lobby.list","c":"l"}"#);
        dispatcher.received(r#"{"e":"lobby.join","c":"j"}"#);
        let sent = peer.take();
        assert_eq!(
            sent[0],
            json!({"v":"1.0","e":"lobby.list.response","p":{"rooms":[]},"c":"l"})
        );
        assert_eq!(sent[1]["p"]["code"], 1008, "{}", sent[1]);
    });
}
