//! The web inspector through the real binary: its refusals (token, Host, Origin, methods),
//! its API over live traffic (sessions, handshake, pages by index with filters, one
//! record's bytes, timeline, exports), its live feed, and `wstap view` over a saved
//! capture. The page itself is driven in Chromium by tests/inspector_browser.rs.

mod support;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use support::binary::{sigterm, spawn_with_inspector, wstap, wstap_command, WithInspector};
use support::web::{encode, get, request};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn start(name: &str) -> (WithInspector, std::path::PathBuf) {
    let capture = temp_path(name);
    let mut command = wstap_command();
    command.args(["--no-intercept", "--capture"]).arg(&capture);
    (spawn_with_inspector(command), capture)
}

async fn stop(mut run: WithInspector) {
    sigterm(&run.child);
    // The test's work is done: waiting here blocks nothing else.
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{}", run.stderr.lock().unwrap());
}

/// One session through the proxy: text, binary, JSON, each echoed, then a close.
async fn chat(proxy: SocketAddr, server: SocketAddr) {
    let mut ws = ws_client(proxy, server).await;
    ws.send(WsMessage::text("hello inspector")).await.unwrap();
    ws.send(WsMessage::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    ws.send(WsMessage::text(r#"{"type":"ping","n":1}"#))
        .await
        .unwrap();
    for _ in 0..3 {
        ws.next().await.unwrap().unwrap();
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

/// GETs until `done` says the answer is what the test waits for (the capture commits
/// within 50 ms of an event), at most 5 s.
async fn get_until(
    addr: SocketAddr,
    token: &str,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..100 {
        let answer = get(addr, token, path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        let value = answer.json();
        if done(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never became what the test waits for");
}

#[tokio::test]
async fn every_request_needs_the_token_the_listeners_host_and_its_own_origin() {
    let (run, capture) = start("inspector-refusals");
    let web = run.web;
    let host = web.to_string();
    let own_origin = format!("http://{web}");

    let bare = request(web, "GET", "/", &[("Host", &host)]).await;
    assert_eq!(bare.status, 401, "no token");
    assert!(bare.text().contains("token"), "{}", bare.text());
    let wrong = request(web, "GET", "/?token=0123", &[("Host", &host)]).await;
    assert_eq!(wrong.status, 401, "a wrong token");
    let api = request(web, "GET", "/api/sessions", &[("Host", &host)]).await;
    assert_eq!(api.status, 401, "the API too");

    // The first visit moves the token into a cookie and out of the address bar.
    let first = request(
        web,
        "GET",
        &format!("/?token={}", run.token),
        &[("Host", &host)],
    )
    .await;
    assert_eq!(first.status, 303);
    assert_eq!(first.headers["location"], "/");
    let cookie = &first.headers["set-cookie"];
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = request(web, "GET", "/", &[("Host", &host), ("Cookie", &pair)]).await;
    assert_eq!(page.status, 200);
    let csp = &page.headers["content-security-policy"];
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert!(page
        .text()
        .contains("<script type=\"module\" src=\"/assets/app.js\">"));
    let script = request(
        web,
        "GET",
        "/assets/app.js",
        &[("Host", &host), ("Cookie", &pair)],
    )
    .await;
    assert_eq!(script.status, 200);
    assert!(script.headers["content-type"].starts_with("text/javascript"));

    // DNS rebinding: a name that resolves to loopback arrives as that name.
    let port = web.port();
    for foreign in [
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port + 1),
    ] {
        let answer = request(
            web,
            "GET",
            &format!("/?token={}", run.token),
            &[("Host", &foreign)],
        )
        .await;
        assert_eq!(answer.status, 403, "Host {foreign}");
    }
    let localhost = format!("localhost:{port}");
    let by_name = request(web, "GET", "/", &[("Host", &localhost), ("Cookie", &pair)]).await;
    assert_eq!(by_name.status, 200, "localhost is the listener's own name");

    // Another site's page: refused on the live feed and everywhere else, token or not.
    for path in ["/api/live", "/api/sessions", "/api/export?format=har"] {
        let answer = request(
            web,
            "GET",
            path,
            &[
                ("Host", &host),
                ("Cookie", &pair),
                ("Origin", "http://evil.example"),
            ],
        )
        .await;
        assert_eq!(answer.status, 403, "{path}");
    }
    let same = request(
        web,
        "GET",
        "/api/capture",
        &[("Host", &host), ("Cookie", &pair), ("Origin", &own_origin)],
    )
    .await;
    assert_eq!(same.status, 200, "its own origin");

    // Nothing changes anything yet: other methods are refused.
    let post = request(
        web,
        "POST",
        "/api/sessions",
        &[("Host", &host), ("Cookie", &pair), ("Content-Length", "0")],
    )
    .await;
    assert_eq!(post.status, 405);

    stop(run).await;
    let _ = std::fs::remove_dir_all(capture);
}

#[tokio::test]
async fn the_api_shows_live_traffic_by_page_filter_and_record() {
    let (server, _) = echo_server().await;
    let (run, capture) = start("inspector-api");
    let (web, token) = (run.web, run.token.clone());

    // The live feed, open before the traffic, as the page opens it.
    let mut feed = tokio::net::TcpStream::connect(web).await.unwrap();
    let head =
        format!("GET /api/live HTTP/1.1\r\nHost: {web}\r\nAuthorization: Bearer {token}\r\n\r\n");
    feed.write_all(head.as_bytes()).await.unwrap();
    let mut feed = BufReader::new(feed);

    chat(run.proxy, server).await;

    // The feed says which session changed, with its row. Session 1 is the test's probe
    // of the proxy's port (it may commit after the feed opened); the chat is session 2.
    let url = format!("ws://{server}/");
    let commit = tokio::time::timeout(Duration::from_secs(10), async {
        let mut line = String::new();
        loop {
            line.clear();
            if feed.read_line(&mut line).await.unwrap() == 0 {
                panic!("the feed ended");
            }
            if let Some(data) = line.trim().strip_prefix("data: ") {
                let value: Value = serde_json::from_str(data).unwrap();
                let sessions = value["sessions"].as_array().cloned().unwrap_or_default();
                if let Some(chat) = sessions.into_iter().find(|s| s["url"] == url.as_str()) {
                    return (value, chat);
                }
            }
        }
    })
    .await
    .expect("a commit event");
    let (commit, chat_row) = commit;
    assert!(commit["last_event"].as_i64().unwrap() > 0);
    assert_eq!(chat_row["id"], 2);

    let sessions = get_until(web, &token, "/api/sessions", |v| {
        v["rows"][1]["state"] == "closed"
    })
    .await;
    assert_eq!(sessions["total"], 2, "{sessions}");
    let row = &sessions["rows"][1];
    assert_eq!(row["index"], 1);
    assert_eq!(row["url"], url.as_str());
    assert_eq!(row["status"], 101);
    assert_eq!(row["close_code"], 1000);

    let session = get(web, &token, "/api/sessions/2").await.json();
    let request_head = session["handshake"]["request_raw"].as_str().unwrap();
    assert!(
        request_head.starts_with("GET / HTTP/1.1\r\n"),
        "{request_head}"
    );
    assert!(session["handshake"]["accept_valid"].as_bool().unwrap());
    assert_eq!(session["messages"], 8, "3 each way, and a close each way");
    assert_eq!(session["frames"], 8);

    let messages = get(web, &token, "/api/sessions/2/rows?kind=messages")
        .await
        .json();
    assert_eq!(messages["total"], 8);
    let rows = messages["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0]["dir"], "c2s");
    assert_eq!(rows[0]["preview"]["text"], "hello inspector");
    let binary = rows.iter().find(|r| r["opcode"] == 2).unwrap();
    assert_eq!(binary["preview"]["hex"], "00 01 02 ff");
    let close = rows.iter().find(|r| r["opcode"] == 8).unwrap();
    assert_eq!(close["close"]["code"], 1000);
    assert_eq!(close["close"]["reason"], "done");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["seq"], i, "unfiltered, a row's index is its position");
    }

    let frames = get(web, &token, "/api/sessions/2/rows?kind=frames&limit=2")
        .await
        .json();
    assert_eq!(frames["rows"].as_array().unwrap().len(), 2);
    let first = &frames["rows"][0];
    assert_eq!(first["flags_byte"], 0x81);
    assert!(
        first["mask_key"].as_str().is_some_and(|k| k.len() == 11),
        "{first}"
    );
    let next = get(
        web,
        &token,
        "/api/sessions/2/rows?kind=frames&index=2&limit=2",
    )
    .await
    .json();
    assert_eq!(
        next["rows"][0]["seq"], 2,
        "the next page starts where the last ended"
    );

    // A filter: index counts matching rows only.
    let filter = encode("dir:c2s and op:text");
    let path = format!("/api/sessions/2/rows?kind=messages&filter={filter}");
    let filtered = get(web, &token, &path).await.json();
    assert_eq!(filtered["total"], 2);
    assert_eq!(filtered["extent"], 8);
    // Which positions those are depends on how the echoes interleaved: ask the rows.
    let expected: Vec<&Value> = rows
        .iter()
        .filter(|r| r["dir"] == "c2s" && r["opcode"] == 1)
        .map(|r| &r["seq"])
        .collect();
    let seqs: Vec<&Value> = filtered["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["seq"])
        .collect();
    assert_eq!(seqs, expected);
    let second = get(web, &token, &format!("{path}&index=1")).await.json();
    assert_eq!(second["rows"][0]["index"], 1);
    assert_eq!(&second["rows"][0]["seq"], expected[1]);
    let json_filter = encode(r#"json.type == "ping""#);
    let by_json = get(
        web,
        &token,
        &format!("/api/sessions/2/rows?kind=messages&filter={json_filter}"),
    )
    .await
    .json();
    assert_eq!(by_json["total"], 2, "the JSON message and its echo");

    // A bad filter says where and why.
    let bad = get(
        web,
        &token,
        &format!("/api/sessions/2/rows?filter={}", encode("len > ")),
    )
    .await;
    assert_eq!(bad.status, 400);
    let error = bad.json();
    assert_eq!(error["filter_error"]["column"], 6, "{error}");
    assert!(
        error["filter_error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected"),
        "{error}"
    );
    let bad_kind = get(web, &token, "/api/sessions/2/rows?kind=bytes").await;
    assert_eq!(bad_kind.status, 400);
    let missing = get(web, &token, "/api/sessions/99").await;
    assert_eq!(missing.status, 404);

    // One record with every byte.
    let detail = get(web, &token, "/api/sessions/2/messages/0").await.json();
    let data = base64::engine::general_purpose::STANDARD
        .decode(detail["data"]["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, b"hello inspector");
    let all_frames = get(web, &token, "/api/sessions/2/rows?kind=frames")
        .await
        .json();
    let binary_seq = all_frames["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dir"] == "c2s" && r["opcode"] == 2)
        .map(|r| r["seq"].clone())
        .expect("the client's binary frame");
    let frame = get(web, &token, &format!("/api/sessions/2/frames/{binary_seq}"))
        .await
        .json();
    assert!(frame["masked"].as_bool().unwrap());
    let data = base64::engine::general_purpose::STANDARD
        .decode(frame["data"]["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, [0, 1, 2, 255], "the frame's payload, unmasked");
    assert_eq!(
        get(web, &token, "/api/sessions/2/frames/80").await.status,
        404
    );

    let timeline = get(web, &token, "/api/sessions/2/timeline").await.json();
    let buckets = timeline["buckets"].as_array().unwrap();
    let sum = |key: &str| {
        buckets
            .iter()
            .map(|b| b[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum("messages_c2s"), 4);
    assert_eq!(sum("messages_s2c"), 4);

    let har = get(web, &token, "/api/export?format=har&session=2").await;
    assert_eq!(har.status, 200);
    assert_eq!(
        har.headers["content-disposition"],
        "attachment; filename=\"wstap-session-2.har\""
    );
    assert!(har.json()["log"]["entries"].is_array());
    let none = get(web, &token, "/api/export?format=json&session=7").await;
    assert_eq!(none.status, 404);
    let live_ndjson = get(web, &token, "/api/export?format=ndjson&session=2")
        .await
        .text();

    stop(run).await;

    // `wstap view` serves the same capture afterwards; its export is the CLI's.
    let mut view = wstap_command();
    view.args(["view"])
        .arg(&capture)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = support::binary::KillOnDrop(view.spawn().unwrap());
    let (url, _) = support::binary::follow_stderr(child.0.stderr.take().unwrap());
    let (web, token) = support::binary::parse_inspector_url(&url.expect("view prints its URL"));
    let from_view = get(web, &token, "/api/export?format=ndjson&session=2")
        .await
        .text();
    let cli = wstap(&[
        "export",
        capture.to_str().unwrap(),
        "--session",
        "2",
        "--format",
        "ndjson",
    ]);
    assert!(cli.status.success());
    assert_eq!(
        from_view,
        String::from_utf8_lossy(&cli.stdout),
        "the inspector's export is the CLI's"
    );
    let lines = |text: &str| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        lines(&live_ndjson),
        lines(&from_view),
        "exported live, the same events"
    );
    let capture_info = get(web, &token, "/api/capture").await.json();
    assert_eq!(capture_info["live"], false);
    sigterm(&child.0);
    let _ = child.0.wait();
    let _ = std::fs::remove_dir_all(capture);
}

#[tokio::test]
async fn a_filtered_view_pages_by_index_over_many_messages() {
    let (server, _) = echo_server().await;
    let (run, capture) = start("inspector-paging");
    let (web, token) = (run.web, run.token.clone());
    let mut ws = ws_client(run.proxy, server).await;
    const SENT: usize = 1500;
    for i in 0..SENT {
        let text = if i % 10 == 0 {
            format!("needle {i}")
        } else {
            format!("hay {i}")
        };
        ws.send(WsMessage::text(text)).await.unwrap();
    }
    for _ in 0..SENT {
        ws.next().await.unwrap().unwrap();
    }
    let all = get_until(
        web,
        &token,
        "/api/sessions/2/rows?kind=messages&limit=1",
        |v| v["total"] == 2 * SENT,
    )
    .await;
    assert_eq!(all["extent"], 2 * SENT);
    let filter = encode("dir:c2s and needle");
    let path = format!("/api/sessions/2/rows?kind=messages&filter={filter}");
    let first = get(web, &token, &format!("{path}&limit=100")).await.json();
    assert_eq!(first["total"], SENT / 10);
    let page = get(web, &token, &format!("{path}&index=140&limit=100"))
        .await
        .json();
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "the last 10 of 150");
    assert_eq!(rows[0]["index"], 140);
    assert_eq!(rows[0]["preview"]["text"], "needle 1400");
    assert_eq!(rows[9]["preview"]["text"], "needle 1490");
    let past = get(web, &token, &format!("{path}&index=150")).await.json();
    assert_eq!(past["rows"].as_array().unwrap().len(), 0);
    assert_eq!(
        get(web, &token, &format!("{path}&limit=5000")).await.status,
        400
    );

    // The session grows: the same filter's list is extended, not scanned again.
    ws.send(WsMessage::text("needle late")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let grown = get_until(web, &token, &format!("{path}&index=150"), |v| {
        v["total"] == 151
    })
    .await;
    assert_eq!(grown["rows"][0]["preview"]["text"], "needle late");
    drop(ws);
    stop(run).await;
    let _ = std::fs::remove_dir_all(capture);
}

#[tokio::test]
async fn no_web_and_no_capture_serve_no_inspector_and_say_why() {
    for (flags, says) in [
        (&["--no-web"][..], None),
        (
            &["--no-capture"][..],
            Some("no inspector: it shows the capture"),
        ),
    ] {
        let mut command = wstap_command();
        command.args(["--no-intercept"]).args(flags);
        if flags == ["--no-web"] {
            command.arg("--capture").arg(temp_path("inspector-no-web"));
        }
        let (child, _) = support::binary::spawn_listening(command);
        let mut child = support::binary::KillOnDrop(child);
        let (url, text) = support::binary::follow_stderr(child.0.stderr.take().unwrap());
        assert!(url.is_none(), "{flags:?}: {}", text.lock().unwrap());
        if let Some(says) = says {
            assert!(
                text.lock().unwrap().contains(says),
                "{}",
                text.lock().unwrap()
            );
        }
        sigterm(&child.0);
        let _ = child.0.wait();
    }
}

#[tokio::test]
async fn an_address_given_that_is_taken_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = wstap_command()
        .args(["--no-intercept", "--listen", "127.0.0.1:0", "--capture"])
        .arg(temp_path("inspector-taken"))
        .args(["--web", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("inspector: cannot listen on {addr}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_compressed_message_shows_its_inflated_bytes_and_its_wire_bytes() {
    let body = deflated(b"inflated hello");
    let frame = wstap_wire::FrameBuilder::text().rsv1(true).encode(&body);
    let (server, _, _) = raw_server(
        switching("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        frame,
    )
    .await;
    let (run, capture) = start("inspector-deflate");
    let (web, token) = (run.web, run.token.clone());
    let mut client = websocket_through(
        run.proxy,
        server,
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    .await;
    let _ = read_exact(&mut client, 4).await;
    drop(client);
    let rows = get_until(web, &token, "/api/sessions/2/rows?kind=messages", |v| {
        v["total"] == 1
    })
    .await;
    let row = &rows["rows"][0];
    assert_eq!(row["compressed"], true);
    assert_eq!(row["preview"]["text"], "inflated hello");
    let detail = get(web, &token, "/api/sessions/2/messages/0").await.json();
    let decode = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v["base64"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(decode(&detail["data"]), b"inflated hello");
    assert_eq!(
        decode(&detail["wire"]),
        body,
        "the bytes as they crossed the wire"
    );
    let frame = get(web, &token, "/api/sessions/2/frames/0").await.json();
    assert_eq!(frame["flags"], serde_json::json!(["FIN", "RSV1"]));
    assert_eq!(decode(&frame["wire"]), body);
    assert_eq!(decode(&frame["data"]), b"inflated hello");
    let handshake = get(web, &token, "/api/sessions/2").await.json();
    assert!(handshake["handshake"]["deflate"].is_object(), "{handshake}");
    stop(run).await;
    let _ = std::fs::remove_dir_all(capture);
}
