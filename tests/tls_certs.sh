#!/bin/sh
# tls_certs.sh DIR: makes the certificates the TLS tests use, with the
# openssl command, into DIR (never committed). EC P-256 keys: quick to make.
#   ca.pem            a CA;  ca2.pem: another CA, which nobody trusts
#   server.pem/.key   "localhost", 127.0.0.1 and ::1, signed by ca
#   other.pem/.key    "other.test" and "*.wild.test", signed by ca (SNI)
#   client.pem/.key   a client certificate, signed by ca (mutual TLS)
#   rogue.pem/.key    "localhost" and 127.0.0.1, signed by ca2
#   server2.pem/.key  "localhost" again, another key (reload)
#   server-enc.key    server.key under a passphrase
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
[ -f done ] && exit 0

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }

ca() { # name subject
	key "$1"
	openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 \
		-addext basicConstraints=critical,CA:true \
		-addext keyUsage=critical,keyCertSign,cRLSign \
		-out "$1.pem" 2>/dev/null
}

leaf() { # name cn san signer usage
	key "$1"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:false\n' \
		"$3" "$5" > "$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" \
		-CAcreateserial -days 30 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

ca ca "actorconn test CA"
ca ca2 "untrusted test CA"
leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" ca serverAuth
leaf server2 localhost "DNS:localhost,IP:127.0.0.1,IP:::1" ca serverAuth
leaf other other.test "DNS:other.test,DNS:*.wild.test" ca serverAuth
leaf client "test client" "DNS:client.test" ca clientAuth
leaf rogue localhost "DNS:localhost,IP:127.0.0.1" ca2 serverAuth
openssl ec -in server.key -aes256 -passout pass:secret \
	-out server-enc.key 2>/dev/null
touch done
