//! The email digest over TLS with a login, against a real SMTP server (aiosmtpd from
//! `scripts/test-deps.sh`) whose certificate a throwaway private CA signed (made here with the
//! `openssl` command): STARTTLS on a submission port and TLS from the first byte, each
//! requiring the login over TLS. `gema report --email` trusts the CA through `digest.ca_file`,
//! takes the password from `GEMA_SMTP_PASSWORD`, and says clearly which server refused what when
//! the CA is not trusted or the password is wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::TestEnv;

const USER: &str = "digest@example.com";
const PASSWORD: &str = "s3cret-Pa55";

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files in
/// `dir`: (ca.pem, server.pem, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (it makes the test's certificates)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=gema test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&ca);
    let mut csr = vec!["req", "-new", "-nodes"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.pem",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// aiosmtpd with the certificate, requiring a login before MAIL (and STARTTLS before the login,
/// in that mode); each message goes to a Maildir and a line of how it came (over TLS or not, the
/// login) to `sessions.jsonl`.
const SERVER: &str = r#"
import json, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, cert, key, out, user, password = sys.argv[1:]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

def authenticate(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword) and data.login == user.encode()
          and data.password == password.encode())
    return AuthResult(success=ok, handled=False, auth_data=data)

class Recorder(Mailbox):
    async def handle_DATA(self, server, session, envelope):
        with open(out + "/sessions.jsonl", "a") as f:
            tls = server.transport.get_extra_info("ssl_object") is not None
            f.write(json.dumps({"tls": tls,
                                "login": session.auth_data.login.decode() if session.authenticated else None,
                                "to": envelope.rcpt_tos}) + "\n")
        return await super().handle_DATA(server, session, envelope)

common = dict(hostname="127.0.0.1", port=int(port), authenticator=authenticate, auth_required=True)
if mode == "starttls":
    c = Controller(Recorder(out + "/box"), tls_context=ctx, require_starttls=True,
                   auth_require_tls=True, **common)
else:
    # Every byte is TLS here; aiosmtpd's auth_require_tls knows only STARTTLS.
    c = Controller(Recorder(out + "/box"), ssl_context=ctx, auth_require_tls=False, **common)
c.start()
print("listening", flush=True)
while True:
    time.sleep(3600)
"#;

/// The SMTP server of one mode (`starttls` or `tls`), stopped when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
}

impl SmtpServer {
    fn start(mode: &str, cert: &Path, key: &Path) -> SmtpServer {
        let python = common::test_python("import aiosmtpd", "aiosmtpd is");
        let port = common::free_port();
        let out = tempfile::tempdir().unwrap();
        let child = Command::new(&python)
            .args(["-c", SERVER, mode, &port.to_string()])
            .arg(cert)
            .arg(key)
            .arg(out.path())
            .args([USER, PASSWORD])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_listening(port, &format!("aiosmtpd ({mode})"));
        SmtpServer { child, port, out }
    }

    /// How each received message came: (tls, login, recipients).
    fn sessions(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.out.path().join("sessions.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The messages in the Maildir.
    fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.out.path().join("box/new"))
            .map(|d| {
                d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for the test's database with `[digest]` pointing at `port` over `security`.
fn config(env: &TestEnv, name: &str, security: &str, port: u16, ca_file: Option<&Path>) -> PathBuf {
    let path = env.dir.path().join(format!("{name}.toml"));
    let ca = ca_file.map_or(String::new(), |p| {
        format!("ca_file = {:?}\n", p.display().to_string())
    });
    let text = format!(
        "state_dir = {state:?}\n[kafka]\nbrokers = {brokers:?}\ntopic_prefix = {prefix:?}\n\
         [clickhouse]\nurl = {url:?}\ndatabase = {db:?}\n\
         [[tracked]]\nname = \"nusapay\"\nquery = \"nusapay\"\n\
         [digest]\nto = [\"team@example.com\"]\nfrom = \"gema <gema@example.com>\"\n\
         host = \"127.0.0.1\"\nport = {port}\nsecurity = {security:?}\nusername = {USER:?}\n\
         timeout_s = 10\n{ca}",
        state = env.config.state_dir.display().to_string(),
        brokers = env.config.kafka.brokers,
        prefix = env.config.kafka.topic_prefix,
        url = env.config.clickhouse.url,
        db = env.config.clickhouse.database,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `gema report --email` with `password` in GEMA_SMTP_PASSWORD: (success, stderr).
fn email(config: &Path, password: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gema"));
    cmd.arg("--config")
        .arg(config)
        .args(["report", "--email", "--since", "1h"])
        .env("NO_COLOR", "1")
        .env_remove("GEMA_SMTP_PASSWORD");
    if let Some(p) = password {
        cmd.env("GEMA_SMTP_PASSWORD", p);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_goes_over_starttls_and_tls_with_a_login_to_a_server_of_a_private_ca() {
    let env = TestEnv::new("digesttls");
    let store = env.store().await;
    let (ca, cert, key) = certificates(env.dir.path());

    // STARTTLS on a submission port.
    let smtp = SmtpServer::start("starttls", &cert, &key);
    let server = format!("127.0.0.1:{}", smtp.port);
    let trusted = config(&env, "starttls", "starttls", smtp.port, Some(&ca));
    let (ok, err) = email(&trusted, Some(PASSWORD));
    assert!(ok, "gema report --email over STARTTLS: {err}");
    let sessions = smtp.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["tls"], true, "{sessions:?}");
    assert_eq!(sessions[0]["login"], USER, "{sessions:?}");
    assert_eq!(sessions[0]["to"], serde_json::json!(["team@example.com"]));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].contains("Subject: gema report: "),
        "{}",
        &messages[0][..messages[0].len().min(2000)]
    );

    // The wrong password: refused, and the error names the server and the login.
    let (ok, err) = email(&trusted, Some("wrong"));
    assert!(!ok, "a wrong password is an error");
    assert!(err.contains(&server), "names the server: {err}");
    assert!(
        err.contains("535") && err.contains(&format!("the login as {USER:?} was refused")),
        "says the login was refused: {err}"
    );
    assert!(
        err.contains("GEMA_SMTP_PASSWORD"),
        "says what to check: {err}"
    );
    // No password at all: named before connecting.
    let (ok, err) = email(&trusted, None);
    assert!(!ok && err.contains("GEMA_SMTP_PASSWORD"), "{err}");

    // Without the CA the server's certificate is not trusted: a TLS error, nothing sent.
    let untrusted = config(&env, "untrusted", "starttls", smtp.port, None);
    let (ok, err) = email(&untrusted, Some(PASSWORD));
    assert!(!ok, "an untrusted certificate is an error");
    assert!(err.contains(&server), "names the server: {err}");
    assert!(
        err.contains("certificate is not trusted") && err.contains("digest.ca_file"),
        "says the certificate is the problem and what to set: {err}"
    );
    // A ca_file that is not there is named at start-up.
    let missing = config(
        &env,
        "missing",
        "starttls",
        smtp.port,
        Some(&env.dir.path().join("nope.pem")),
    );
    let (ok, err) = email(&missing, Some(PASSWORD));
    assert!(!ok && err.contains("digest.ca_file"), "{err}");
    assert_eq!(smtp.messages().len(), 1, "only the first was delivered");
    drop(smtp);

    // TLS from the first byte (SMTPS).
    let smtp = SmtpServer::start("tls", &cert, &key);
    let config = config(&env, "tls", "tls", smtp.port, Some(&ca));
    let (ok, err) = email(&config, Some(PASSWORD));
    assert!(ok, "gema report --email over TLS: {err}");
    let sessions = smtp.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        (&sessions[0]["tls"], &sessions[0]["login"]),
        (&serde_json::json!(true), &serde_json::json!(USER))
    );
    assert_eq!(smtp.messages().len(), 1);

    env.cleanup(&store).await;
}
