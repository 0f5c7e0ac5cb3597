"""The websocket_core JSON protocol (websocket-core-features.md §3, §4, §8.4, §9, §16) driven
by Python's `websockets` as an independent client against the `json_echo` example's server:
the envelopes on the wire exactly, field by field (`t` aside, which must be an integer ms
timestamp).

    python test_json_protocol.py --port P [--rate-port R] [--session-port S] [unittest options]

`--port`: a `json_echo` server without a message rate; `--rate-port`: one started with
`--rate 2`; `--session-port`: one started with `--sessions` (sessions-resume.md: `s` on
sequenced messages, resume with replay). Without them their tests are skipped, and say so.
`tests/python_json.rs` starts all three in-process and runs this with the checkout's venv
(`.ci/python-tools`).
Plain `unittest` and `asyncio`; the only package needed is `websockets`.
"""

import argparse
import asyncio
import json
import sys
import time
import unittest

from websockets.asyncio.client import connect

PORT = None
RATE_PORT = None
SESSION_PORT = None
# How long any one answer may take before a test fails (instead of hanging).
TIMEOUT = 5.0
# Timestamps after 2023-11-14: a real ms clock, not seconds or zero.
MIN_T = 1_700_000_000_000


def url(port):
    return f"ws://127.0.0.1:{port}/ws"


class Protocol(unittest.IsolatedAsyncioTestCase):
    """Each test on its own connection (its own session and message budget)."""

    port_attr = "PORT"

    async def asyncSetUp(self):
        port = globals()[self.port_attr]
        if port is None:
            self.skipTest(f"no --{self.port_attr.lower().replace('_', '-')} given")
        self.ws = await connect(url(port), open_timeout=TIMEOUT)
        self.created = await self.read()

    async def asyncTearDown(self):
        await self.ws.close()

    async def read(self):
        """The next frame: text, one JSON object, with `t` an integer ms timestamp, which
        is checked and removed so that the rest compares exactly."""
        frame = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        self.assertIsInstance(frame, str, f"expected a text frame, got {frame!r}")
        message = json.loads(frame)
        self.assertIsInstance(message, dict, frame)
        t = message.pop("t", None)
        self.assertIs(type(t), int, f"t must be an integer: {frame}")
        self.assertGreater(t, MIN_T, frame)
        self.assertLess(t, (time.time() + 60) * 1000, frame)
        return message

    async def send(self, message):
        """Sends a dict as JSON, or a str or bytes as it is."""
        if isinstance(message, dict):
            message = json.dumps(message)
        await self.ws.send(message)

    async def ask(self, message):
        await self.send(message)
        return await self.read()

    def assert_sys_error(self, answer, code, message, details=None, c=None, v="1.0", **extra):
        """`answer` is exactly this `sys.error` (no `details` when `details` is None, no
        `c` when `c` is None, and in `p` the `extra` fields beside code, message, details)."""
        p = {"code": code, "message": message}
        if details is not None:
            p["details"] = details
        p.update(extra)
        expected = {"v": v, "e": "sys.error", "p": p}
        if c is not None:
            expected["c"] = c
        self.assertEqual(answer, expected)


class Session(Protocol):
    async def test_session_created_comes_first(self):
        created = self.created
        self.assertEqual(set(created), {"v", "e", "p"}, created)
        self.assertEqual(created["v"], "1.0")
        self.assertEqual(created["e"], "sys.session.created")
        self.assertEqual(set(created["p"]), {"sessionId", "userId"}, created)
        self.assertIsInstance(created["p"]["sessionId"], str)
        self.assertTrue(created["p"]["sessionId"])
        self.assertIsNone(created["p"]["userId"])

    async def test_each_connection_gets_its_own_session(self):
        async with connect(url(PORT), open_timeout=TIMEOUT) as other:
            frame = json.loads(await asyncio.wait_for(other.recv(), TIMEOUT))
        self.assertEqual(frame["e"], "sys.session.created")
        self.assertNotEqual(frame["p"]["sessionId"], self.created["p"]["sessionId"])


class Routing(Protocol):
    async def test_echo_reply_carries_c_and_v(self):
        answer = await self.ask({"v": "1.0", "e": "echo", "p": {"msg": "hi"}, "c": "r1"})
        self.assertEqual(answer, {"v": "1.0", "e": "echo.response", "p": {"msg": "hi"}, "c": "r1"})

    async def test_no_v_means_the_current_version_and_no_c_means_no_c(self):
        answer = await self.ask({"e": "echo", "p": {"msg": "ünïcödé ✓"}})
        self.assertEqual(answer, {"v": "1.0", "e": "echo.response", "p": {"msg": "ünïcödé ✓"}})

    async def test_sum(self):
        answer = await self.ask({"e": "sum", "p": {"values": [1, 2.5, -0.5, 10]}, "c": "s"})
        self.assertEqual(answer, {"v": "1.0", "e": "sum.response", "p": {"sum": 13.0}, "c": "s"})

    async def test_slow_returns_its_payload(self):
        payload = {"n": 1, "nested": {"list": [1, "two", None, True, 2.5]}, "s": "x"}
        started = time.monotonic()
        answer = await self.ask({"e": "slow", "p": payload, "c": "w"})
        self.assertGreaterEqual(time.monotonic() - started, 0.045)
        self.assertEqual(answer, {"v": "1.0", "e": "slow.response", "p": payload, "c": "w"})

    async def test_concurrent_requests_are_matched_by_c_and_answered_in_order(self):
        # A request() as the reference's SDK does it: a future per `c`, resolved by
        # whichever inbound message carries that `c`.
        pending = {}
        arrived = []

        async def reader():
            while pending:
                message = await self.read()
                arrived.append(message["c"])
                pending.pop(message["c"]).set_result(message)

        requests = [
            ("slow", {"n": 0}),
            ("echo", {"msg": "one"}),
            ("sum", {"values": [1, 2]}),
            ("slow", {"n": 3}),
            ("echo", {"msg": "four"}),
            ("sum", {"values": []}),
            ("echo", {"msg": "six"}),
        ]
        loop = asyncio.get_running_loop()
        futures = []
        for i in range(len(requests)):
            c = f"req-{i}"
            pending[c] = loop.create_future()
            futures.append(pending[c])
        read_task = asyncio.create_task(reader())
        await asyncio.gather(
            *(
                self.send({"e": event, "p": p, "c": f"req-{i}"})
                for i, (event, p) in enumerate(requests)
            )
        )
        answers = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
        await read_task
        self.assertEqual(arrived, [f"req-{i}" for i in range(len(requests))])
        expected_payloads = [
            {"n": 0},
            {"msg": "one"},
            {"sum": 3.0},
            {"n": 3},
            {"msg": "four"},
            {"sum": 0.0},
            {"msg": "six"},
        ]
        for i, ((event, _), answer, p) in enumerate(zip(requests, answers, expected_payloads)):
            self.assertEqual(
                answer, {"v": "1.0", "e": f"{event}.response", "p": p, "c": f"req-{i}"}
            )


class EnvelopeErrors(Protocol):
    """§3: every refused frame is answered with sys.error (1001, or 1002 for `v`), with the
    frame's `c` when it could be read; never a silent drop, and the connection stays."""

    def invalid(self, reason, message):
        return 1001, message, {"reason": reason}

    async def check(self, frame, code, message, details, c):
        answer = await self.ask(frame)
        with self.subTest(frame=frame):
            self.assert_sys_error(answer, code, message, details, c)

    async def test_bad_json(self):
        await self.check("not json", *self.invalid("invalid_json", "Invalid JSON format"), None)
        # A syntax error after `c`: the `c` was readable.
        await self.check(
            '{"c":"late","e":"echo",',
            *self.invalid("invalid_json", "Invalid JSON format"),
            "late",
        )

    async def test_top_level_array(self):
        await self.check(
            '[{"e":"echo","c":"x"}]',
            *self.invalid("not_an_object", "Invalid JSON format: the message must be an object"),
            None,
        )
        await self.check(
            '"echo"',
            *self.invalid("not_an_object", "Invalid JSON format: the message must be an object"),
            None,
        )

    async def test_a_key_given_twice(self):
        await self.check(
            '{"e":"echo","e":"sum","c":"k"}',
            *self.invalid("duplicate_key", "Invalid JSON format: duplicate key"),
            "k",
        )

    async def test_missing_e(self):
        await self.check(
            {"p": {}, "c": "a"},
            *self.invalid("missing_event", "Missing required field: event (e)"),
            "a",
        )

    async def test_empty_or_non_string_e(self):
        for e in ["", 5, None]:
            await self.check(
                {"e": e, "c": "e"},
                *self.invalid("invalid_event", "Invalid event: must be a non-empty string"),
                "e",
            )

    async def test_v_as_number(self):
        await self.check(
            {"e": "echo", "v": 1, "c": "b"},
            1002,
            "Unsupported protocol version: v must be a string",
            {"version": None, "supported": ["1.0"]},
            "b",
        )

    async def test_unsupported_v(self):
        await self.check(
            {"e": "echo", "v": "9.9", "c": "c"},
            1002,
            "Unsupported protocol version: 9.9",
            {"version": "9.9", "supported": ["1.0"]},
            "c",
        )

    async def test_p_not_an_object(self):
        for p in [[], None, "text", 3]:
            await self.check(
                {"e": "echo", "p": p, "c": "d"},
                *self.invalid("invalid_payload", "Invalid payload: must be an object"),
                "d",
            )

    async def test_c_or_t_of_the_wrong_type(self):
        await self.check(
            {"e": "echo", "p": {"msg": "x"}, "c": 7},
            *self.invalid("invalid_correlation", "Invalid correlation id: must be a string"),
            None,
        )
        await self.check(
            {"e": "echo", "p": {"msg": "x"}, "t": 1.5, "c": "t"},
            *self.invalid("invalid_timestamp", "Invalid timestamp: must be an integer"),
            "t",
        )

    async def test_a_binary_frame(self):
        await self.check(
            b"\x01\x02\x03",
            1001,
            "Binary frames are not accepted: send JSON text",
            {"reason": "binary_frame"},
            None,
        )

    async def test_the_connection_survives_every_refusal(self):
        for frame in ["not json", "[1,2]", '{"p":{}}', '{"e":"echo","v":1}', '{"e":"echo","p":[]}']:
            answer = await self.ask(frame)
            self.assertEqual(answer["e"], "sys.error", frame)
        await self.send(b"\x00")
        self.assertEqual((await self.read())["e"], "sys.error")
        answer = await self.ask({"e": "echo", "p": {"msg": "still here"}, "c": "h"})
        self.assertEqual(answer, {"v": "1.0", "e": "echo.response", "p": {"msg": "still here"}, "c": "h"})


class DispatchErrors(Protocol):
    async def test_unknown_event_is_1008(self):
        answer = await self.ask({"e": "nobody.home", "p": {}, "c": "u"})
        self.assert_sys_error(answer, 1008, "Handler not found for event: nobody.home", c="u")

    async def test_a_missing_field_is_1009_naming_it(self):
        answer = await self.ask({"e": "echo", "c": "m"})
        self.assert_sys_error(
            answer,
            1009,
            "Validation failed for field: msg",
            {"errors": [{"field": "msg", "reason": "missing field `msg`"}]},
            "m",
        )

    async def test_a_field_of_the_wrong_type_is_1009_naming_it(self):
        answer = await self.ask({"e": "sum", "p": {"values": [1, "two"]}, "c": "w"})
        self.assertEqual(answer["e"], "sys.error")
        self.assertEqual(answer["c"], "w")
        self.assertEqual(answer["p"]["code"], 1009)
        self.assertEqual(answer["p"]["message"], "Validation failed for field: values[1]")
        errors = answer["p"]["details"]["errors"]
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["field"], "values[1]")
        self.assertIn("invalid type", errors[0]["reason"])

    async def test_an_application_error_keeps_its_code_and_message(self):
        answer = await self.ask({"e": "fail", "p": {}, "c": "g"})
        self.assert_sys_error(answer, 4100, "not today", c="g")

    async def test_requires_auth_is_1003_for_an_anonymous_connection(self):
        answer = await self.ask({"e": "whoami", "c": "f"})
        self.assert_sys_error(answer, 1003, "Authentication required", c="f")


class RateLimit(Protocol):
    """§9 against a server started with `--rate 2` (2 per second, a burst of 2)."""

    port_attr = "RATE_PORT"

    async def test_over_the_rate_is_1010_with_retry_after_and_then_passes_again(self):
        for c in ["1", "2"]:
            answer = await self.ask({"e": "echo", "p": {"msg": c}, "c": c})
            self.assertEqual(answer, {"v": "1.0", "e": "echo.response", "p": {"msg": c}, "c": c})
        answer = await self.ask({"e": "echo", "p": {"msg": "3"}, "c": "3"})
        retry = answer["p"].get("retryAfterMs")
        self.assertIs(type(retry), int, answer)
        # At 2 per second the next token is at most 500 ms away.
        self.assertTrue(1 <= retry <= 500, answer)
        self.assert_sys_error(
            answer, 1010, "Rate limit exceeded", {"retryAfterMs": retry}, "3", retryAfterMs=retry
        )
        # The refused message was not handled and took no token: after retryAfterMs one
        # passes.
        await asyncio.sleep(retry / 1000)
        answer = await self.ask({"e": "echo", "p": {"msg": "4"}, "c": "4"})
        self.assertEqual(answer, {"v": "1.0", "e": "echo.response", "p": {"msg": "4"}, "c": "4"})


class Resume(Protocol):
    """sessions-resume.md against a server with sessions: `s` on sequenced messages and
    none on control events, a resume after an abrupt drop replaying exactly the missed
    messages with their original `s`, and a refused resume keeping the fresh session."""

    port_attr = "SESSION_PORT"

    async def connect(self):
        ws = await connect(url(SESSION_PORT), open_timeout=TIMEOUT)
        self.addAsyncCleanup(ws.close)
        return ws

    async def read_on(self, ws):
        self.ws, saved = ws, self.ws
        try:
            return await self.read()
        finally:
            self.ws = saved

    async def ask_on(self, ws, message):
        await ws.send(json.dumps(message))
        return await self.read_on(ws)

    async def test_created_carries_the_resume_secret_and_no_s(self):
        p = self.created["p"]
        self.assertEqual(set(p), {"sessionId", "userId", "resumeSecret"}, self.created)
        for key in ["sessionId", "resumeSecret"]:
            self.assertRegex(p[key], "^[0-9a-f]{32}$")
        self.assertNotIn("s", self.created)

    async def test_a_resume_after_a_drop_replays_the_missed_messages_in_order(self):
        session = self.created["p"]
        answer = await self.ask({"e": "join", "p": {"room": "py"}, "c": "j"})
        self.assertEqual(
            answer, {"v": "1.0", "e": "join.response", "p": {"joined": "py"}, "c": "j", "s": 1}
        )
        other = await self.connect()
        await self.read_on(other)
        await self.ask_on(other, {"e": "join", "p": {"room": "py"}})
        said = await self.ask_on(other, {"e": "say", "p": {"room": "py", "text": "one"}})
        self.assertEqual(said["p"], {"sent": 1})
        self.assertEqual(
            await self.read(), {"v": "1.0", "e": "chat.message", "p": {"text": "one"}, "s": 2}
        )
        # Gone without a close frame, as a network failure looks.
        self.ws.transport.abort()
        for text in ["two", "three"]:
            await self.ask_on(other, {"e": "say", "p": {"room": "py", "text": text}})
        await asyncio.sleep(0.05)
        again = await self.connect()
        fresh = await self.read_on(again)
        self.assertEqual(fresh["e"], "sys.session.created")
        self.assertNotEqual(fresh["p"]["sessionId"], session["sessionId"])
        request = {
            "sessionId": session["sessionId"],
            "resumeSecret": session["resumeSecret"],
            "lastSeq": 2,
        }
        restored = await self.ask_on(again, {"e": "sys.reconnect.request", "p": request, "c": "rs"})
        self.assertEqual(
            restored,
            {
                "v": "1.0",
                "e": "sys.session.restored",
                "p": {
                    "sessionId": session["sessionId"],
                    "userId": None,
                    "rooms": ["py"],
                    "metadata": None,
                    "lastSeq": 2,
                    "replayed": 2,
                },
                "c": "rs",
            },
        )
        for s, text in [(3, "two"), (4, "three")]:
            self.assertEqual(
                await self.read_on(again),
                {"v": "1.0", "e": "chat.message", "p": {"text": text}, "s": s},
            )
        answer = await self.ask_on(again, {"e": "echo", "p": {"msg": "back"}, "c": "b"})
        self.assertEqual(
            answer, {"v": "1.0", "e": "echo.response", "p": {"msg": "back"}, "c": "b", "s": 5}
        )

    async def test_a_wrong_secret_is_1004_and_the_connection_keeps_its_fresh_session(self):
        session = self.created["p"]
        other = await self.connect()
        await self.read_on(other)
        request = {"sessionId": session["sessionId"], "resumeSecret": "0" * 32, "lastSeq": 0}
        answer = await self.ask_on(other, {"e": "sys.reconnect.request", "p": request, "c": "x"})
        self.assert_sys_error(answer, 1004, "Invalid session credentials", c="x")
        answer = await self.ask_on(other, {"e": "echo", "p": {"msg": "m"}, "c": "m"})
        self.assertEqual(
            answer, {"v": "1.0", "e": "echo.response", "p": {"msg": "m"}, "c": "m", "s": 1}
        )


def main():
    global PORT, RATE_PORT, SESSION_PORT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="a json_echo server")
    parser.add_argument("--rate-port", type=int, help="a json_echo server with --rate 2")
    parser.add_argument("--session-port", type=int, help="a json_echo server with --sessions")
    args, rest = parser.parse_known_args()
    PORT, RATE_PORT, SESSION_PORT = args.port, args.rate_port, args.session_port
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
