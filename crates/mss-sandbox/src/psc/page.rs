//! The French login page of the authorization code flow: the test professionals, one
//! button each. Every value is HTML-escaped.

use super::Professional;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn login(request: &str, professionals: &[Professional], hint: Option<&str>) -> String {
    let mut rows = String::new();
    for p in professionals {
        let preferred = hint.is_some_and(|h| p.matches(h));
        rows.push_str(&format!(
            "<li><button type=\"submit\" name=\"professional\" value=\"{id}\"{auto}>{given} {family}</button> \
             <span>{profession} · {email} · identifiant national {id}</span></li>\n",
            id = escape(&p.national_id),
            auto = if preferred { " autofocus" } else { "" },
            given = escape(&p.given_name),
            family = escape(&p.family_name),
            profession = escape(&p.profession),
            email = escape(&p.email),
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <title>Pro Santé Connect (bac à sable)</title></head><body>\n\
         <h1>Pro Santé Connect — bac à sable</h1>\n\
         <p>Environnement de test local : choisissez le professionnel qui se connecte. \
         Aucune carte CPS ni e-CPS n'est nécessaire.</p>\n\
         <form method=\"post\" action=\"/auth/login\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\n<ul>\n{rows}</ul>\n\
         <p><button type=\"submit\" name=\"professional\" value=\"\">Annuler</button></p>\n\
         </form></body></html>\n",
        request = escape(request),
    )
}

pub fn error(message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <title>Pro Santé Connect (bac à sable)</title></head><body>\n\
         <h1>Connexion impossible</h1>\n<p>{}</p></body></html>\n",
        escape(message)
    )
}

pub fn logged_out() -> String {
    "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
     <title>Pro Santé Connect (bac à sable)</title></head><body>\n\
     <h1>Vous êtes déconnecté</h1>\n<p>La session Pro Santé Connect est terminée.</p>\
     </body></html>\n"
        .to_owned()
}
