//! HTTP/1.1 on a connection: bodies relayed by their framing (`body`), where each request
//! goes (`route`, `reverse`), the exchange with the upstream (`exchange`), wstap's own
//! page (`page`), and how a connection's requests end (`ending`). `requests` reads
//! requests one after another and decides the next stage. The heads themselves
//! (`crate::head`), wstap's error answers (`crate::respond`) and the checks a request must
//! pass (`crate::guard`) sit below every room, as the vocabulary they share.

pub(crate) mod body;
pub(crate) mod ending;
pub(crate) mod exchange;
pub(crate) mod page;
pub(crate) mod requests;
pub mod reverse;
pub(crate) mod route;
