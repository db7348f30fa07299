#!/usr/bin/env bash
# Dovecot 2.3 (IMAP, submission, LMTP) and Postfix for the transport interop tests.
# The tests start private instances on 127.0.0.1; the system services are never used.
# Idempotent: a no-op when everything is already installed.
set -euo pipefail

packages=(dovecot-core dovecot-imapd dovecot-submissiond dovecot-lmtpd postfix)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "mail servers already installed: $(dovecot --version 2>/dev/null | cut -d' ' -f1), postfix $(postconf -d -h mail_version 2>/dev/null)"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# "No configuration": Postfix must not write a system main.cf nor ask questions.
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy "${missing[0]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
