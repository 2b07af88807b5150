//! HTTP/1.1 on a connection: request heads read raw (`head`), bodies relayed by their
//! framing (`body`), where each request goes (`route`), the exchange with the upstream
//! (`exchange`), wstap's own answers (`respond`) and page (`page`), and the checks a
//! request must pass (`guard`). `requests` reads requests one after another and decides
//! the next stage.

pub(crate) mod body;
pub(crate) mod ending;
pub(crate) mod exchange;
pub(crate) mod guard;
pub mod head;
pub(crate) mod page;
pub(crate) mod requests;
pub(crate) mod respond;
pub mod reverse;
pub(crate) mod route;
