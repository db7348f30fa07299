//! `mss.toml` for the sandbox: the configuration contract of docs/configuration.md, with
//! paths relative to the file so the directory can move.

use std::path::Path;

use crate::space::SandboxInfo;

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn relative(path: &Path, base: &Path) -> String {
    let shown = path.strip_prefix(base).unwrap_or(path);
    quoted(&shown.to_string_lossy())
}

pub(crate) fn mss_toml(info: &SandboxInfo, dir: &Path) -> String {
    let hint = info
        .bals
        .iter()
        .find_map(|b| b.login_hint.as_deref())
        .unwrap_or_default();
    let mut out = format!(
        "# Written by `mss sandbox` at each start: edit a copy, not this file.\n\
         # Servers are found by autoconfiguration from the sandbox (docs/sandbox.md).\n\n\
         [software]\n\
         nil = \"MSS-SANDBOX\"\n\
         test_identities = true\n\
         data_dir = \"mss-data\"\n\n\
         [tls]\n\
         anchors = [{anchor}]\n\n\
         [psc]\n\
         issuer = {issuer}\n\
         client_id = {client_id}\n\
         client_secret = {secret}\n\
         flow = \"ciba\"\n\
         # Who approves the CIBA request; another professional: see sandbox.json.\n\
         login_hint = {hint}\n\
         binding_message = \"MSS SANDBOX\"\n\
         scope = \"openid scope_all\"\n\
         acr_values = \"eidas1\"\n\
         # The sandbox root only (PSC is plain http on 127.0.0.1 for now).\n\
         anchors = [{anchor}]\n\
         public_roots = false\n\n\
         [autoconfig]\n\
         trusted_domains = [{domain}, \"localhost\"]\n\
         xml_urls = [{xml}]\n",
        anchor = relative(&info.ca_pem, dir),
        issuer = quoted(&info.psc.issuer),
        client_id = quoted(&info.psc.client_id),
        secret = quoted(&info.psc.client_secret),
        hint = quoted(hint),
        domain = quoted(&info.domain),
        xml = quoted(&info.autoconfig),
    );
    // The second operator's mailboxes name their servers: autoconfiguration serves the
    // first domain only.
    let second = info.second_operator.bals.iter().map(|b| {
        (
            b,
            Some((&info.second_operator.imap, &info.second_operator.smtp)),
        )
    });
    for (bal, servers) in info.bals.iter().map(|b| (b, None)).chain(second) {
        out.push_str(&format!(
            "\n[[bal]]\naddress = {}\nkind = \"{}\"\n",
            quoted(&bal.address),
            serde_json::to_value(bal.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
        if let Some((imap, smtp)) = servers {
            out.push_str(&format!(
                "imap = {}\nsmtp = {}\n",
                quoted(imap),
                quoted(smtp)
            ));
        }
        if let Some(hint) = &bal.login_hint {
            out.push_str(&format!("login_hint = {}\n", quoted(hint)));
        }
        if let (Some(cert), Some(key)) = (&bal.cert_pem, &bal.key_pem) {
            out.push_str(&format!(
                "client_cert = {}\nclient_key = {}\n",
                relative(cert, dir),
                relative(key, dir)
            ));
        }
    }
    out
}
