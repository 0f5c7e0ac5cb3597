#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets to seeds/<target>/ (run from anywhere).

ws_decoder and tcp_deframer inputs start with two control bytes (mode, chunk seed); see
the targets' docs. The WebSocket frames are the examples of RFC 6455 section 5.7.
json_envelope inputs are the text frames themselves (websocket-core-features.md section 3).
"""
import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def masked(frame_head, payload):
    """A client frame: the mask bit set on the length byte, then the key, then the payload."""
    return bytes([frame_head, 0x80 | len(payload)]) + MASK + bytes(
        b ^ MASK[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason):
    return struct.pack(">H", code) + reason


SERVER, CLIENT = 0, 1  # bit 0 of the ws_decoder mode byte: the reading role
WS = {
    # Frames a client reads (unmasked).
    "text_hello": (CLIENT, bytes([0x81, 0x05]) + b"Hello"),
    "fragmented_text": (CLIENT, bytes([0x01, 0x03]) + b"Hel" + bytes([0x80, 0x02]) + b"lo"),
    "ping_inside_fragments": (CLIENT, bytes([0x01, 0x03]) + b"Hel" + bytes([0x89, 0x05])
                              + b"Hello" + bytes([0x80, 0x02]) + b"lo"),
    "binary_256": (CLIENT, bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(range(256))),
    "binary_64k_header_only": (CLIENT, bytes([0x82, 0x7F]) + struct.pack(">Q", 65536)),
    # Frames a server reads (masked).
    "masked_text_hello": (SERVER, masked(0x81, b"Hello")),
    "masked_pong": (SERVER, masked(0x8A, b"Hello")),
    "masked_close": (SERVER, masked(0x88, close_payload(1000, b"bye"))),
    "masked_fragmented_binary": (SERVER, masked(0x02, b"\x00\x01") + masked(0x00, b"\x02")
                                 + masked(0x80, b"\x03")),
}

REQUEST = (
    "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + "\r\nOrigin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
ACCEPT = base64.b64encode(hashlib.sha1((KEY + GUID).encode()).digest()).decode()
RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: " + ACCEPT + "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
).encode()
HANDSHAKE = {
    "request": REQUEST,
    "request_then_frame": REQUEST + masked(0x81, b"Hello"),
    "response": RESPONSE,
    "blank_lines": b"\r\n\r\n",
}


def tcp_frame(payload):
    return struct.pack(">Q", 8 + len(payload)) + payload


TCP = {
    "one_frame": tcp_frame(b"Hello"),
    "three_frames": tcp_frame(b"") + tcp_frame(bytes(range(200))) + tcp_frame(b"x"),
    "over_the_limit": struct.pack(">Q", 8 + 4096),
    "below_the_prefix": struct.pack(">Q", 7),
}

DEEP = "[" * 200 + "1" + "]" * 200
JSON = {
    "valid_full": '{"v":"1.0","e":"chat.send","p":{"text":"hi","n":[1,2.5,null,true]},'
                  '"c":"req-1","t":1700000000000}',
    "valid_minimal": '{"e":"a"}',
    "valid_v2_escapes": '{"e":"ro\\u006fm.join","v":"2.0","c":"\\ud83d\\ude00","p":{}}',
    "invalid_json_trailing": '{"e":"a","c":"k"} x',
    "not_an_object": '["e","a"]',
    "duplicate_key": '{"e":"a","c":"k","e":"b"}',
    "missing_event": '{"c":"k","p":{}}',
    "invalid_event": '{"e":"","c":"k"}',
    "unsupported_version": '{"e":"a","v":"0.9","c":"k"}',
    "non_string_version": '{"e":"a","v":1.0,"c":"k"}',
    "invalid_payload": '{"e":"a","p":[1],"c":"k"}',
    "invalid_correlation": '{"e":"a","c":{"x":1}}',
    "invalid_timestamp": '{"e":"a","c":"k","t":1.5}',
    "deep_nesting": '{"e":"a","c":"k","p":{"x":' + DEEP + '}}',
    "huge_numbers": '{"e":"a","t":99999999999999999999,"p":{"n":1e400,"m":-1e-400}}',
    # Found by the fuzzer: p nested past serde_json's Value limit (object + 127 arrays) is
    # accepted, as p is skipped without counting depth.
    "deep_payload_128": '{"e":"a","p":{"":' + "[" * 127 + "]" * 127 + '}}',
    # Found by the fuzzer: sonic-rs accepts a bad \u escape inside p, serde_json refuses.
    "bad_hex_escape_in_payload": '{"e":"a","p":{"x":"\\uzzzz"}}',
    "lone_surrogate": '{"e":"\\ud800","c":"\\udc00x","p":{"x":"\\ud800\\u0041"}}',
}


def write(target, name, data):
    folder = os.path.join(HERE, "seeds", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


for name, (role, stream) in WS.items():
    # Whole (chunk seed 255: chunks of up to 256 bytes) and byte by byte (seed 0).
    write("ws_decoder", name, bytes([role, 255]) + stream)
    write("ws_decoder", name + "_bytewise", bytes([role | 2, 0]) + stream)
for name, data in HANDSHAKE.items():
    write("handshake", name, data)
for name, stream in TCP.items():
    write("tcp_deframer", name, bytes([0, 255]) + stream)
    write("tcp_deframer", name + "_split", bytes([1, 3]) + stream)
for name, text in JSON.items():
    write("json_envelope", name, text.encode())
