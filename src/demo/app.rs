//! What the demo's chat speaks (`wstap demo --app`): plain text, the ASP.NET Core SignalR
//! hub protocol (JSON), or Socket.IO over Engine.IO v4. The same three people say the same
//! things in each; only the words on the wire change, so the views have something to
//! decode (docs/views.md).

use clap::ValueEnum;
use serde_json::{json, Value};

/// The record separator ending every SignalR JSON record.
const RS: char = '\u{1e}';

/// The demo chat's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum App {
    /// Plain text messages.
    #[default]
    Plain,
    /// The SignalR hub protocol (JSON): a handshake, invocations, completions, pings.
    Signalr,
    /// Socket.IO (Engine.IO v4): open and connect packets, events with acks, pings.
    Socketio,
}

/// What a client's message asks of the chat server.
#[derive(Debug, PartialEq, Eq)]
pub enum Said {
    /// Say `text` to everyone; `ack` names the answer the sender waits for.
    Text { text: String, ack: Option<String> },
    /// Protocol upkeep: answer with these messages (to the sender only).
    Answer(Vec<String>),
    /// Nothing to do.
    Nothing,
}

impl App {
    /// The path and query a client named `name` connects to.
    pub fn path(self, name: &str) -> String {
        match self {
            App::Plain => format!("/chat?name={name}"),
            App::Signalr => format!("/chathub?name={name}"),
            App::Socketio => format!("/socket.io/?EIO=4&transport=websocket&name={name}"),
        }
    }

    /// What a client sends first, once connected.
    pub fn client_hello(self) -> Vec<String> {
        match self {
            App::Plain => Vec::new(),
            App::Signalr => vec![format!("{}{RS}", json!({"protocol": "json", "version": 1}))],
            App::Socketio => vec!["40".to_owned()],
        }
    }

    /// A client's message saying `text`, its `n`th call.
    pub fn client_says(self, n: u32, name: &str, text: &str) -> String {
        match self {
            App::Plain => text.to_owned(),
            App::Signalr => record(json!({
                "type": 1, "invocationId": n.to_string(), "target": "SendMessage", "arguments": [name, text],
            })),
            App::Socketio => format!("42{n}{}", json!(["chat", text])),
        }
    }

    /// What the server sends a client named `name` first.
    pub fn server_welcome(self, name: &str) -> Vec<String> {
        match self {
            App::Plain => vec![format!("Welcome {name}.")],
            // The server waits for the client's handshake.
            App::Signalr => Vec::new(),
            App::Socketio => vec![format!(
                "0{}",
                json!({"sid": format!("sid-{name}"), "upgrades": [], "pingInterval": 25000,
                       "pingTimeout": 20000, "maxPayload": 1_000_000})
            )],
        }
    }

    /// What the server tells everyone when `name` joins or leaves.
    pub fn server_announces(self, name: &str, joined: bool) -> String {
        let (plain, event) = match joined {
            true => (format!("{name} joined."), "UserJoined"),
            false => (format!("{name} left."), "UserLeft"),
        };
        match self {
            App::Plain => plain,
            App::Signalr => record(json!({"type": 1, "target": event, "arguments": [name]})),
            App::Socketio => format!("42{}", json!([event, name])),
        }
    }

    /// What the server tells everyone when `name` said `text`.
    pub fn server_relays(self, name: &str, text: &str) -> String {
        match self {
            App::Plain => format!("{name} says: {text}"),
            App::Signalr => {
                record(json!({"type": 1, "target": "ReceiveMessage", "arguments": [name, text]}))
            }
            App::Socketio => format!("42{}", json!(["chat", {"from": name, "text": text}])),
        }
    }

    /// The server's answer to a call `ack` (a SignalR completion, a Socket.IO ACK).
    pub fn server_acks(self, ack: &str) -> Option<String> {
        match self {
            App::Plain => None,
            App::Signalr => Some(record(
                json!({"type": 3, "invocationId": ack, "result": true}),
            )),
            App::Socketio => Some(format!("43{ack}[\"ok\"]")),
        }
    }

    /// A protocol-level ping the server sends, when the protocol has one.
    pub fn server_ping(self) -> Option<String> {
        match self {
            App::Plain => None,
            App::Signalr => Some(record(json!({"type": 6}))),
            App::Socketio => Some("2".to_owned()),
        }
    }

    /// What a client's text message asks of the server.
    pub fn server_reads(self, text: &str) -> Said {
        match self {
            App::Plain => Said::Text {
                text: text.to_owned(),
                ack: None,
            },
            App::Signalr => signalr_reads(text),
            App::Socketio => socketio_reads(text),
        }
    }

    /// What a client answers to a server's text message, if anything (a Socket.IO pong).
    pub fn client_answers(self, text: &str) -> Option<String> {
        match (self, text) {
            (App::Socketio, "2") => Some("3".to_owned()),
            _ => None,
        }
    }
}

/// A SignalR JSON record.
fn record(value: Value) -> String {
    format!("{value}{RS}")
}

fn signalr_reads(text: &str) -> Said {
    let mut answers = Vec::new();
    for part in text.split(RS).filter(|p| !p.is_empty()) {
        let Ok(value) = serde_json::from_str::<Value>(part) else {
            continue;
        };
        if value.get("protocol").is_some() {
            answers.push(format!("{{}}{RS}"));
            continue;
        }
        if value["type"] == 1 && value["target"] == "SendMessage" {
            let text = value["arguments"][1]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ack = value["invocationId"].as_str().map(str::to_owned);
            return Said::Text { text, ack };
        }
    }
    match answers.is_empty() {
        true => Said::Nothing,
        false => Said::Answer(answers),
    }
}

fn socketio_reads(text: &str) -> Said {
    if text == "40" {
        return Said::Answer(vec![format!("40{}", json!({"sid": "chat"}))]);
    }
    let Some(rest) = text.strip_prefix("42") else {
        return Said::Nothing;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = (digits > 0).then(|| rest[..digits].to_owned());
    match serde_json::from_str::<Value>(&rest[digits..]) {
        Ok(Value::Array(args)) if args.first() == Some(&json!("chat")) => Said::Text {
            text: args
                .get(1)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            ack,
        },
        _ => Said::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wstap_views::{decode, View};

    #[test]
    fn each_app_speaks_what_its_view_decodes() {
        for (app, view) in [
            (App::Signalr, View::SignalR),
            (App::Socketio, View::SocketIo),
        ] {
            let said = app.client_says(3, "John", "hi");
            let decoded = decode(view, said.as_bytes(), true);
            assert!(decoded.problem.is_none(), "{app:?}: {}", decoded.summary());
            assert_eq!(
                app.server_reads(&said),
                Said::Text {
                    text: "hi".into(),
                    ack: Some("3".into())
                }
            );
            let ack = app.server_acks("3").unwrap();
            let answer = decode(view, ack.as_bytes(), true);
            assert_eq!(
                answer.items[0].call.as_ref().unwrap().role,
                wstap_views::Role::Answer
            );
            for line in [
                app.server_relays("John", "hi"),
                app.server_announces("Adam", true),
            ] {
                assert!(
                    decode(view, line.as_bytes(), true).problem.is_none(),
                    "{line}"
                );
            }
        }
        assert_eq!(
            App::Signalr.server_reads(&App::Signalr.client_hello()[0]),
            Said::Answer(vec!["{}\u{1e}".to_owned()])
        );
    }
}
