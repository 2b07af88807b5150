//! What no input can do to the filter language: nest or grow past its limits (a parse
//! error with a caret, never a stack overflow), or turn a mistyped field into a silent
//! search for three words.

use wstap_filter::sql::{RecordColumn, SessionColumn};
use wstap_filter::{
    Filter, RecordFacts, RecordKind, Scope, SessionFacts, SqlSchema, State, MAX_DEPTH, MAX_TERMS,
};
use wstap_wire::Direction;

fn session() -> SessionFacts<'static> {
    SessionFacts {
        id: 7,
        host: "api.example.com",
        port: 443,
        url: "wss://api.example.com/chat",
        path: "/chat",
        client: "127.0.0.1:50000",
        subprotocol: None,
        extension_names: "",
        tls: true,
        status: Some(101),
        state: State::Open,
        kind: None,
        close: None,
        started_us: 1_796_156_130_000_000,
        violations: 0,
    }
}

fn record(payload: &'static [u8]) -> RecordFacts<'static> {
    RecordFacts {
        kind: RecordKind::Message,
        dir: Direction::ClientToServer,
        opcode: 1,
        flags: 0x81,
        masked: true,
        len: payload.len() as u64,
        frames: 1,
        compressed: false,
        close: None,
        time_us: 1_796_156_131_000_000,
        violations: &[],
        payload,
        stream: None,
        fate: None,
        tags: "",
        origin: wstap_filter::Origin::Wire,
        dropped: false,
    }
}

/// Columns named after themselves: enough to read the SQL's shape.
struct Names;

impl SqlSchema for Names {
    fn record(&self, column: RecordColumn) -> String {
        format!("r.{column:?}")
    }
    fn session(&self, column: SessionColumn) -> String {
        format!("s.{column:?}")
    }
    fn session_records(&self, session: &str) -> String {
        format!("records r WHERE r.session = {session}")
    }
}

/// How deeply the parentheses of `sql` nest.
fn paren_depth(sql: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in sql.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Runs `check` on a thread with the smallest stack wstap evaluates filters on (2 MiB:
/// tokio's workers and std's threads), so that recursion as deep as the input would
/// overflow it rather than pass unseen on the test's own stack. At the limits an
/// unoptimised build uses about 1.1 MiB of it, an optimised one under 0.4 MiB.
fn on_a_workers_stack(check: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2048 * 1024)
        .spawn(check)
        .unwrap()
        .join()
        .unwrap();
}

fn assert_error_at(filter: &str, message: &str, column: usize, width: usize) {
    let error = Filter::parse(filter).expect_err("a parse error");
    assert!(
        error.message().contains(message),
        "{:?} should say {message:?}",
        error.message()
    );
    assert_eq!(error.span(), (column, width), "{error}");
}

#[test]
fn parentheses_nested_past_the_limit_are_an_error_at_the_first_one_too_many() {
    for levels in [MAX_DEPTH + 1, 5_000, 100_000] {
        let filter = format!("{}x{}", "(".repeat(levels), ")".repeat(levels));
        assert_error_at(&filter, "nests too deeply", MAX_DEPTH, 1);
        assert!(Filter::parse(&filter)
            .unwrap_err()
            .message()
            .contains(&format!("at most {MAX_DEPTH} levels")));
    }
}

#[test]
fn negations_past_the_limit_are_an_error_whatever_their_spelling() {
    for (one, width) in [("not ", 3), ("!", 1), ("-", 1)] {
        let filter = format!("{}x", one.repeat(50_000));
        assert_error_at(&filter, "nests too deeply", one.len() * MAX_DEPTH, width);
    }
    // Parentheses and negations count together.
    let half = MAX_DEPTH / 2;
    let filter = format!(
        "{}{}x{}",
        "not ".repeat(half),
        "(".repeat(half + 1),
        ")".repeat(half + 1)
    );
    assert_error_at(&filter, "nests too deeply", 4 * half + half, 1);
}

#[test]
fn the_deepest_filter_allowed_parses_evaluates_and_translates_on_a_workers_stack() {
    on_a_workers_stack(|| {
        // Every level alternates a negation and a group: `not (a or not (a or ... x))`.
        let levels = MAX_DEPTH / 2;
        let filter = format!("{}x{}", "not (hello or ".repeat(levels), ")".repeat(levels));
        let filter = Filter::parse(&filter).expect("at the limit it parses");
        let hello = record(b"hello");
        // `not (hello or ...)` is false for a record that says hello; for one that says
        // only x, the innermost level is false and each level out flips it: an even
        // number of levels makes the whole true.
        assert_eq!(levels % 2, 0);
        assert!(!filter.matches_record(&session(), &hello));
        assert!(filter.matches_record(&session(), &record(b"x")));
        assert!(!filter.matches_session(&session(), &[hello]));
        assert_eq!(filter.session_verdict(&session()), None);
        for scope in [Scope::Records, Scope::Sessions] {
            let sql = filter.to_sql(scope, &Names);
            assert_eq!(sql.condition.matches('?').count(), sql.params.len());
        }

        let parens = format!("{}x{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(Filter::parse(&parens).is_ok());
        let nots = format!("{}x", "not ".repeat(MAX_DEPTH));
        assert!(Filter::parse(&nots)
            .unwrap()
            .matches_record(&session(), &record(b"x")));
    });
}

#[test]
fn more_terms_than_the_limit_are_an_error_at_the_first_one_too_many() {
    let terms = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>();
    let at_limit = terms(MAX_TERMS).join(" or ");
    assert!(Filter::parse(&at_limit).is_ok());
    for joiner in [" or ", " and ", " "] {
        let too_many = terms(3_000).join(joiner);
        let column = terms(MAX_TERMS).join(joiner).len() + joiner.len();
        let width = format!("w{MAX_TERMS}").len();
        assert_error_at(&too_many, "too long", column, width);
        assert!(Filter::parse(&too_many)
            .unwrap_err()
            .message()
            .contains(&format!("at most {MAX_TERMS} terms")));
    }
}

#[test]
fn a_long_chain_is_flat_and_its_sql_nests_only_logarithmically() {
    let words: Vec<String> = (0..MAX_TERMS).map(|i| format!("w{i}")).collect();
    on_a_workers_stack(move || {
        let filter = Filter::parse(&words.join(" or ")).unwrap();
        assert!(filter.matches_record(&session(), &record(b"... W999 ...")));
        assert!(!filter.matches_record(&session(), &record(b"nothing")));
        let sql = filter.to_sql(Scope::Records, &Names);
        // log2(1000) levels of halves, plus each term's own few.
        assert!(
            paren_depth(&sql.condition) <= 16,
            "{}",
            paren_depth(&sql.condition)
        );
        assert_eq!(sql.params.len(), MAX_TERMS);
        let mixed = format!(
            "({}) and not ({})",
            words.join(" "),
            words[..10].join(" or ")
        );
        assert!(Filter::parse(&mixed).is_err(), "1010 terms");
    });
}

#[test]
fn a_mistyped_protocol_field_is_an_error_naming_the_fields_it_has() {
    for (filter, name) in [
        ("signalr.targte == \"SendMessage\"", "signalr.targte"),
        ("op:text mqtt.topics ~ \"^a\"", "mqtt.topics"),
        ("socketio.evnt:chat", "socketio.evnt"),
    ] {
        let error = Filter::parse(filter).expect_err(filter);
        let column = filter.find(name).unwrap();
        assert_eq!(error.span(), (column, name.len()), "{filter}: {error}");
        assert!(error.message().contains("has no field"), "{error}");
    }
    let error = Filter::parse("signalr.targte == 1").unwrap_err();
    assert_eq!(
        error.message(),
        "signalr has no field \"targte\" (it has type, target, id, error)"
    );
    for good in [
        "signalr.target == \"SendMessage\"",
        "socketio.namespace:/admin",
        "mqtt.topic ~ \"^sensors/\"",
        "stomp.destination:/topic/*",
        "graphql.operation:OnMessage",
        "jsonrpc.method:eth_subscribe",
        "msgpack.user.id == 3",
        "cbor[0] > 1",
        // A dotted word alone is searched for.
        "mqtt.org",
        "socketio.emit and op:text",
    ] {
        assert!(Filter::parse(good).is_ok(), "{good}");
    }
}

#[test]
fn a_comparison_on_an_unknown_field_is_an_error_spaced_or_not_dotted_or_not() {
    for (filter, name, suggestion) in [
        ("lenght > 1000", "lenght", Some("length")),
        ("lenght>1000", "lenght", Some("length")),
        ("statu == 101", "statu", Some("status' or 'state")),
        (
            "sigalr.target == \"x\"",
            "sigalr.target",
            Some("signalr.target"),
        ),
        ("foo.bar==\"x\"", "foo.bar", None),
        ("jsn.user.id == 42", "jsn.user.id", Some("json.user.id")),
        ("x-api-key : abc", "x-api-key", None),
        ("op:text and hots ~ \"^a\"", "hots", Some("host")),
    ] {
        let error = Filter::parse(filter).expect_err(filter);
        let column = filter.find(name).unwrap();
        assert_eq!(error.span(), (column, name.len()), "{filter}: {error}");
        assert!(
            error
                .message()
                .starts_with(&format!("unknown field '{name}'")),
            "{filter}: {error}"
        );
        if let Some(suggestion) = suggestion {
            assert!(
                error
                    .message()
                    .contains(&format!("did you mean '{suggestion}'?")),
                "{error}"
            );
        }
        assert!(error.message().contains("json.PATH"), "lists the fields");
        assert!(error.message().contains("length"), "lists the fields");
    }
}

#[test]
fn words_and_known_fields_read_as_before() {
    let json = record(br#"{"user":{"id":42}}"#);
    for (filter, expected) in [
        ("json.user.id == 42", true),
        ("json.user.id  !=  42", false),
        ("json.user.id>=42", true),
    ] {
        let parsed = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(
            parsed.matches_record(&session(), &json),
            expected,
            "{filter}"
        );
    }
    let payload = record(b"example.com v1.2.3 x-api-key");
    for (filter, expected) in [
        ("len > 10", true),
        ("len   >=   10", true),
        ("example.com", true),
        ("v1.2.3", true),
        ("x-api-key", true),
        ("example. com", true),
        ("tls !nothing", true),
        ("status : 101", true),
    ] {
        let parsed = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(
            parsed.matches_record(&session(), &payload),
            expected,
            "{filter}"
        );
    }
    assert_error_at("host > x", "host takes ':'", 5, 1);
    assert_error_at("len ~ 5", "len is a number", 4, 1);
}

#[test]
fn an_error_in_a_long_filter_shows_the_part_around_the_mistake() {
    let words: Vec<String> = (0..1_200).map(|i| format!("w{i}")).collect();
    let error = Filter::parse(&words.join(" or ")).unwrap_err();
    let shown = error.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    let (filter, caret) = (lines[1], lines[2]);
    assert!(
        filter.chars().count() <= 2 + 1 + 40 + 40 + 40 + 1,
        "{filter}"
    );
    assert!(
        filter.starts_with("  …") && filter.ends_with('…'),
        "{filter}"
    );
    // The caret stands under the first term too many.
    let at = caret.find('^').unwrap();
    let under: String = filter.chars().skip(at).take(5).collect();
    assert_eq!(under, "w1000", "{shown}");
    assert_eq!(caret.trim(), "^^^^^");
}
