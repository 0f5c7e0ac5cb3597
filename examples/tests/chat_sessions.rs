//! The chat example with sessions: a client whose connection the server kills (`/kick`)
//! in the middle of a stream of lines loses none and sees none twice, and the room still
//! gets all of its lines.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use examples::chat::{member, server, KICKED, RECONNECTED};
use examples::proto::manifest::IntroductionMessage;

/// Lines each client says.
const LINES: usize = 300;
/// Alyx sends `/kick` after each of these of her lines.
const KICKS: [usize; 3] = [75, 150, 225];

/// What a client received so far.
struct Heard {
    rx: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Heard {
    fn new() -> (mpsc::Sender<String>, Self) {
        let (tx, rx) = mpsc::channel();
        let lines = Vec::new();
        (tx, Self { rx, lines })
    }

    /// Collects until `line` arrived (or `deadline` passed).
    fn until(&mut self, line: &str, deadline: Instant) {
        while !self.lines.iter().any(|l| l == line) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(_) => panic!("{line:?} never arrived; got {:?}", self.lines),
            }
        }
    }

    /// Collects until the room is quiet for `quiet`.
    fn drain(&mut self, quiet: Duration) {
        while let Ok(line) = self.rx.recv_timeout(quiet) {
            self.lines.push(line);
        }
    }

    /// The chat lines of `who`, in the order received.
    fn from(&self, who: &str) -> Vec<&str> {
        let prefix = format!("{who}: ");
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect()
    }

    fn count(&self, line: &str) -> usize {
        self.lines.iter().filter(|l| *l == line).count()
    }
}

fn said(who: &str) -> Vec<String> {
    (1..=LINES).map(|n| format!("{who} {n}")).collect()
}

#[test]
fn a_kicked_chat_client_resumes_without_losing_or_repeating_a_line() {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(2500);
    let server = server("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (alyx_tx, mut alyx_heard) = Heard::new();
    let (eli_tx, mut eli_heard) = Heard::new();
    let alyx = member(&url, move |l| drop(alyx_tx.send(l.to_owned()))).unwrap();
    let eli = member(&url, move |l| drop(eli_tx.send(l.to_owned()))).unwrap();
    alyx.send_message(IntroductionMessage {
        name: "Alyx".into(),
        age: 19,
    });
    alyx_heard.until("* Alyx joined", deadline);
    eli.send_message(IntroductionMessage {
        name: "Eli".into(),
        age: 44,
    });
    eli_heard.until("* Eli joined", deadline);
    alyx_heard.until("* Eli joined", deadline);

    // Eli talks to the room while Alyx does, so lines keep arriving at Alyx across her
    // kicks; she goes on sending right after each `/kick`, before the server drops her.
    let eli_talks = {
        let eli = eli.clone();
        std::thread::spawn(move || {
            for (n, line) in said("eli").into_iter().enumerate() {
                eli.try_send(line).unwrap();
                if n % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    for (n, line) in said("alyx").into_iter().enumerate() {
        alyx.try_send(line).unwrap();
        if KICKS.contains(&(n + 1)) {
            alyx.try_send("/kick").unwrap();
        }
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    eli_talks.join().unwrap();

    let (alyx_said, eli_said) = (said("alyx"), said("eli"));
    alyx_heard.until(&format!("Alyx: {}", alyx_said[LINES - 1]), deadline);
    alyx_heard.until(&format!("Eli: {}", eli_said[LINES - 1]), deadline);
    eli_heard.until(&format!("Alyx: {}", alyx_said[LINES - 1]), deadline);
    // Anything repeated would come now.
    alyx_heard.drain(Duration::from_millis(150));
    eli_heard.drain(Duration::from_millis(150));

    // The kills landed: each kick was processed once, and Alyx reconnected after each
    // (what she sent after a kick waited for the resume, so the next kick came on the
    // next connection).
    assert_eq!(
        alyx_heard.count(KICKED),
        KICKS.len(),
        "{:?}",
        alyx_heard.lines
    );
    assert_eq!(
        alyx_heard.count(RECONNECTED),
        KICKS.len(),
        "{:?}",
        alyx_heard.lines
    );
    assert!(
        !alyx_heard.lines.iter().any(|l| l.contains("resume failed")),
        "{:?}",
        alyx_heard.lines
    );
    // The killed client: every line of the room, once, in each speaker's order.
    assert_eq!(alyx_heard.from("Alyx"), alyx_said, "Alyx's own lines");
    assert_eq!(alyx_heard.from("Eli"), eli_said, "Eli's lines, at Alyx");
    // The other client: all of the killed client's lines, once, in order.
    assert_eq!(eli_heard.from("Alyx"), alyx_said, "Alyx's lines, at Eli");
    assert_eq!(eli_heard.from("Eli"), eli_said, "Eli's own lines");
    assert_eq!(eli_heard.count(KICKED), 0, "only Alyx was kicked");

    alyx.close();
    eli.close();
    server.close();
    server.wait();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}
