//! What bind does at run time: a real server listens on the addresses bind chose, and only on
//! them. The tests use the loopback interface (`lo` with 127.0.0.1 and ::1, as the setup table
//! assumes too) and port 0; a query is answered by whoami, an address left out refuses the
//! connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use ferrodns_plugin::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use ferrodns_plugin::proto::rr::{Name, RecordType};
use ferrodns_plugin::{Metrics, Registry};
use ferrodns_server::{ConfigError, Server, Source, load};

/// How long a socket read may block before the test fails (a bound, not a wait).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(ferrodns_plugin_bind::DESCRIPTOR);
    r.add(ferrodns_plugin_whoami::DESCRIPTOR);
    r
}

async fn try_start(directives: &str) -> Result<Server, ConfigError> {
    let source = Source {
        filename: "Corefile".into(),
        text: format!(".:0 {{\n{directives}\n    whoami\n}}\n").into_bytes(),
        default_port: "53".into(),
    };
    let instance = load(source, &registry(), &Metrics::new(), None)?;
    Server::start(instance).await
}

async fn start(directives: &str) -> Server {
    try_start(directives)
        .await
        .unwrap_or_else(|e| panic!("{directives}: {e}"))
}

/// The addresses the server's DNS listeners bound, sorted.
fn bound(server: &Server) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = server.listeners().iter().map(|l| l.addr).collect();
    v.sort();
    v
}

fn query(id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("example.org.").unwrap(),
        RecordType::A,
    ));
    m
}

/// A UDP query to `to`; whoami's reply, checked to be for this query.
fn udp(to: SocketAddr, id: u16) -> Message {
    let local: SocketAddr = if to.is_ipv6() {
        "[::1]:0".parse().unwrap()
    } else {
        "127.0.0.1:0".parse().unwrap()
    };
    let s = UdpSocket::bind(local).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.send_to(&query(id).to_vec().unwrap(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (n, from) = s.recv_from(&mut buf).expect("a reply");
    assert_eq!(from, to, "the reply comes from the bound address");
    let r = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(r.metadata.id, id);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    r
}

/// A TCP query to `to`: the reply, or the error connecting.
fn tcp(to: SocketAddr, id: u16) -> std::io::Result<Message> {
    let mut s = TcpStream::connect(to)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let b = query(id).to_vec().unwrap();
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    s.write_all(&out)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    let r = Message::from_vec(&buf).unwrap();
    assert_eq!(r.metadata.id, id);
    Ok(r)
}

fn refused(to: SocketAddr) {
    match tcp(to, 99) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{to}: {e}"),
        Ok(m) => panic!("{to} answered, but nothing should listen there: {m:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_the_only_one_listened_on() {
    let server = start("    bind 127.0.0.1").await;
    let addrs = bound(&server);
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    let at = addrs[0];
    assert_eq!(at.ip(), ip("127.0.0.1"));
    assert_eq!(server.listeners()[0].label, "dns://127.0.0.1:0");
    tokio::task::spawn_blocking(move || {
        udp(at, 1);
        assert_eq!(
            tcp(at, 2).unwrap().metadata.response_code,
            ResponseCode::NoError
        );
        // Another loopback address, same port: nobody listens there.
        refused(SocketAddr::new(ip("127.0.0.2"), at.port()));
        refused(SocketAddr::new(ip("::1"), at.port()));
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bind_every_address_is_listened_on() {
    // The contrast to the test above: the same query to 127.0.0.2 is answered.
    let server = start("").await;
    let addrs = bound(&server);
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(addrs[0].ip().is_unspecified(), "{addrs:?}");
    let port = addrs[0].port();
    tokio::task::spawn_blocking(move || {
        let r = tcp(SocketAddr::new(ip("127.0.0.2"), port), 3).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_stands_for_each_of_its_addresses() {
    let server = start("    bind lo").await;
    let addrs = bound(&server);
    let ips: Vec<IpAddr> = addrs.iter().map(|a| a.ip()).collect();
    assert_eq!(ips, [ip("127.0.0.1"), ip("::1")], "{addrs:?}");
    tokio::task::spawn_blocking(move || {
        for (i, at) in addrs.into_iter().enumerate() {
            udp(at, 10 + i as u16);
        }
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn except_leaves_an_address_out() {
    let server = start("    bind lo {\n        except ::1\n    }").await;
    let addrs = bound(&server);
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    let at = addrs[0];
    assert_eq!(at.ip(), ip("127.0.0.1"));
    tokio::task::spawn_blocking(move || {
        udp(at, 20);
        refused(SocketAddr::new(ip("::1"), at.port()));
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_lines_add_up() {
    let server = start("    bind ::1\n    bind 127.0.0.1").await;
    let addrs = bound(&server);
    let ips: Vec<IpAddr> = addrs.iter().map(|a| a.ip()).collect();
    assert_eq!(ips, [ip("127.0.0.1"), ip("::1")], "{addrs:?}");
    tokio::task::spawn_blocking(move || {
        for (i, at) in addrs.into_iter().enumerate() {
            udp(at, 30 + i as u16);
        }
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_the_host_does_not_have_cannot_be_listened_on() {
    // TEST-NET-3: valid to bind's setup, but not an address of this host.
    let err = match try_start("    bind 203.0.113.77").await {
        Err(e) => e.to_string(),
        Ok(s) => {
            let addrs = bound(&s);
            s.stop().await;
            panic!("listening on {addrs:?}");
        }
    };
    assert!(err.starts_with("listen udp 203.0.113.77:0: "), "{err}");
}
