//! The page: HTML, CSS and JavaScript modules written for wstap, embedded in the binary
//! so the inspector needs nothing but it. No build step: the files in `static/` are what
//! the browser runs.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its media type.
    pub media_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $media:literal),* $(,)?) => {
        /// The file `/assets/NAME` serves, if there is one.
        pub fn asset(name: &str) -> Option<Asset> {
            match name {
                $($name => Some(Asset {
                    media_type: $media,
                    bytes: include_bytes!(concat!("../static/", $name)),
                }),)*
                _ => None,
            }
        }

        #[cfg(test)]
        const NAMES: &[&str] = &[$($name),*];
    };
}

assets! {
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "format.js" => "text/javascript; charset=utf-8",
    "list.js" => "text/javascript; charset=utf-8",
    "sessions.js" => "text/javascript; charset=utf-8",
    "session.js" => "text/javascript; charset=utf-8",
    "detail.js" => "text/javascript; charset=utf-8",
    "intercept.js" => "text/javascript; charset=utf-8",
    "conditions.js" => "text/javascript; charset=utf-8",
    "replay.js" => "text/javascript; charset=utf-8",
    "timeline.js" => "text/javascript; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
}

/// The page itself.
pub const INDEX: &[u8] = include_bytes!("../static/index.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let mut sources = vec![String::from_utf8_lossy(INDEX).into_owned()];
        for name in NAMES {
            sources.push(String::from_utf8_lossy(asset(name).unwrap().bytes).into_owned());
        }
        for source in &sources {
            for part in source
                .split("\"./")
                .skip(1)
                .chain(source.split("\"/assets/").skip(1))
            {
                let name = part.split('"').next().unwrap_or("");
                assert!(
                    asset(name).is_some(),
                    "{name} is referenced but not embedded"
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_style_or_handler() {
        let index = String::from_utf8_lossy(INDEX);
        assert!(
            !index.contains("<script>") && !index.contains("<style"),
            "inline code"
        );
        assert!(!index.contains("style=\""), "inline style");
        // No `onclick=`-style attribute anywhere: the policy would block it anyway.
        let handler = index.match_indices(" on").any(|(at, _)| {
            let rest = &index[at + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "an inline event handler");
    }
}
