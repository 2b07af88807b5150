//! How to trust wstap's CA, for `wstap ca` and the `http://wstap/` page.

/// Step-by-step trust instructions for the CA certificate at `pem` (PEM) and `der` (DER).
pub fn trust_instructions(pem: &str, der: &str) -> String {
    format!(
        "\
Trust the wstap CA only on machines you debug on: whoever holds its key can impersonate
any site to clients that trust it.

  curl                 curl --proxy http://127.0.0.1:8888 --cacert {pem} https://example.com/
  Python (websockets,  SSL_CERT_FILE={pem} https_proxy=http://127.0.0.1:8888 python client.py
    requests, httpx)   (SSL_CERT_FILE replaces the default roots for that process;
                        requests also reads REQUESTS_CA_BUNDLE)
  Node.js              NODE_EXTRA_CA_CERTS={pem} node client.js
  Debian/Ubuntu system sudo cp {pem} /usr/local/share/ca-certificates/wstap.crt
    (also .NET, Go,    sudo update-ca-certificates
     OpenSSL users)    (undo: remove the file, then sudo update-ca-certificates --fresh)
  Chromium/Chrome on   certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n wstap -i {pem}
    Linux (NSS)        (package libnss3-tools; undo: certutil -d sql:$HOME/.pki/nssdb -D -n wstap)
  Firefox              Settings > Privacy & Security > Certificates > View Certificates >
                       Authorities > Import {pem}, tick \"identify websites\"
                       (or certutil as above with -d sql:<your Firefox profile folder>)
  .NET on Windows      certutil -addstore -user Root {der}
  macOS                sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {pem}
"
    )
}
