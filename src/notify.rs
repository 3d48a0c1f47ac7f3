//! Readiness notification for systemd (`Type=notify`, sd_notify(3)): once `run` or
//! `server` has bound its listeners, `READY=1` is sent as one datagram to the socket
//! named by `$NOTIFY_SOCKET`, so units ordered after it start only when it really
//! serves; `STOPPING=1` when shutdown begins. Without `$NOTIFY_SOCKET` (not under
//! systemd) nothing is sent. A leaf utility: the protocol is a few bytes on a Unix
//! datagram socket, so no crate is needed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (such as `READY=1`) to the socket named by `$NOTIFY_SOCKET`. Returns
/// whether anything was sent: `false` when the variable is unset (not under systemd).
pub fn notify(state: &str) -> std::io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => notify_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to `socket`: a filesystem path, or with a leading `@` a name in
/// Linux's abstract socket namespace (both are what systemd may put in `$NOTIFY_SOCKET`).
pub fn notify_to(socket: &OsStr, state: &str) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sender.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sender.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

/// Tells systemd the service is ready, logging (not failing) when that is impossible:
/// a service that works but cannot report it should keep working.
pub fn ready() {
    match notify("READY=1") {
        Ok(true) => tracing::debug!("told systemd the service is ready"),
        Ok(false) => {}
        Err(err) => tracing::warn!(error = %err, "cannot tell systemd the service is ready ($NOTIFY_SOCKET)"),
    }
}

/// Tells systemd shutdown has begun, so it does not count the wait as a hang.
pub fn stopping() {
    if let Err(err) = notify("STOPPING=1") {
        tracing::warn!(error = %err, "cannot tell systemd the service is stopping ($NOTIFY_SOCKET)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_socket_receives_the_state() {
        let dir = std::env::temp_dir().join(format!("smimp-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_abstract_socket_receives_the_state() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("smimp-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_that_names_the_cause() {
        let err = notify_to(OsStr::new("/nonexistent/smimp/notify.sock"), "READY=1").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
