// The bench protocol (perf/src/lib.rs) on uWebSockets, a peer for perf/run (issue 15).
//
//   uws-bench-server [--addr HOST:PORT]      (default 127.0.0.1:9100, as bench-server)
//
// Every text or binary message is echoed to its sender with its opcode, except one whose
// first byte is `B`, which goes to every connected client, the sender included: every
// socket subscribes to one topic at open and the message is published to it through the
// app (`App::publish`, which, unlike `WebSocket::publish`, does not skip the sender).
// Any path upgrades (route `/*`); compression off; 16 MiB payload and backpressure limit,
// never closing on it. One thread, one loop; no pinning (perf/run uses taskset). The
// rooms (`R`) and JSON modes of bench-server are not implemented.
//
// Built by perf/uws/build against uWebSockets and uSockets sources kept outside the
// repository (perf/uws/README.md).

#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr char BROADCAST_TAG = 'B';
constexpr std::string_view TOPIC = "all";

struct PerSocketData {};

[[noreturn]] void usage(const char *why) {
    std::fprintf(stderr, "uws-bench-server: %s\nusage: uws-bench-server [--addr HOST:PORT]\n", why);
    std::exit(2);
}

}  // namespace

int main(int argc, char **argv) {
    std::string addr = "127.0.0.1:9100";
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
            addr = argv[++i];
        } else if (std::strncmp(argv[i], "--addr=", 7) == 0) {
            addr = argv[i] + 7;
        } else {
            usage("unknown argument");
        }
    }
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) usage("--addr must be HOST:PORT");
    std::string host = addr.substr(0, colon);
    int port = std::atoi(addr.c_str() + colon + 1);
    if (port <= 0 || port > 65535) usage("bad port");

    uWS::App app;
    app.ws<PerSocketData>("/*", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .maxBackpressure = 16 * 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .open = [](auto *ws) { ws->subscribe(TOPIC); },
        .message = [&app](auto *ws, std::string_view message, uWS::OpCode opCode) {
            if (!message.empty() && message[0] == BROADCAST_TAG) {
                app.publish(TOPIC, message, opCode, false);
            } else {
                ws->send(message, opCode, false);
            }
        },
    }).listen(host, port, [&](auto *listen_socket) {
        if (!listen_socket) {
            std::fprintf(stderr, "uws-bench-server: cannot listen on %s\n", addr.c_str());
            std::exit(1);
        }
    }).run();
    return 0;
}
