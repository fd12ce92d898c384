//! Where the bed's hosts live, and where the test process opens the
//! sockets it uses as each of them.
//!
//! Where the machine allows it, every host is a network namespace of its
//! own, with its own loopback, joined to the others by a veth pair to a
//! bridge; the bridge sits in a namespace of its own too, and a last veth
//! pair joins it to the test's namespace, where the control plane runs
//! and from where strangers call. Nothing but those links joins the
//! hosts, so what one host reaches of another is what the network lets
//! through.
//!
//! ```text
//!   test process, control plane  10.252.N.1   strangers  10.252.N.99-104
//!                │ veth
//!   bridge  (namespace palisade-bed-<pid>-<N>-net)
//!      │ veth             │ veth             │ veth
//!   node-a 10.252.N.11   node-b .12         node-c .13
//! ```
//!
//! Each host's loopback is its own: there its agent's outbound listeners
//! are (127.0.0.1), and the workloads with loopback addresses of their
//! own, and the applications.
//!
//! Otherwise, the hosts are distinct loopback addresses of the test's own
//! namespace (127.0.0.11 and so on, the same last octets), where their
//! agents' outbound listeners are too, and each bed says why on standard
//! error.
//!
//! A socket stays in the namespace it was made in, whichever thread uses
//! it later: [`Site::socket`] makes it on a short-lived thread that first
//! joins the host's namespace, and hands it to the test's runtime.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::{Arc, Mutex};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::topology::HOSTS;

/// What every namespace of a bed of this process is named after.
const PREFIX: &str = "palisade-bed-";
/// The last octet of the test's own address on the bed's network.
const HERE: u8 = 1;
/// The last octet of an address of the test's that is none of the hosts'.
const STRANGER: u8 = 99;
/// How many such addresses the test has, from [`STRANGER`] up.
const STRANGERS: u8 = 6;

/// The subnets (10.252.N.0/24) that beds of this process hold or held.
static SUBNETS: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());

/// The bed's network: namespaces, or loopback addresses.
pub struct Network {
    kind: Kind,
    hosts: Vec<Site>,
}

enum Kind {
    Loopback,
    /// The namespaces, removed when dropped, and the subnet's third octet.
    Namespaces {
        names: Vec<String>,
        subnet: u8,
    },
}

impl Network {
    /// Namespaces where the machine allows them, else loopback addresses.
    pub fn create() -> Network {
        match Self::namespaces() {
            Ok(network) => network,
            Err(why) => {
                eprintln!("the bed's hosts share the test's network namespace: {why}");
                Self::loopback()
            }
        }
    }

    /// The hosts as distinct loopback addresses of the test's namespace.
    pub fn loopback() -> Network {
        Network {
            kind: Kind::Loopback,
            hosts: HOSTS.iter().map(|_| Site::here()).collect(),
        }
    }

    /// The hosts as namespaces, or why the machine does not allow them.
    pub fn namespaces() -> Result<Network, String> {
        remove_stale();

        let subnet = free_subnet()?;
        let base = format!("{PREFIX}{}-{subnet}", std::process::id());
        let mut network = Network {
            kind: Kind::Namespaces {
                names: Vec::new(),
                subnet,
            },
            hosts: Vec::new(),
        };
        let bridge = network.add_namespace(format!("{base}-net"))?;
        network.join_test_namespace(&bridge, subnet)?;

        for (index, host) in HOSTS.iter().enumerate() {
            let name = network.add_namespace(format!("{base}-{}", host.node))?;
            network.join_host(&bridge, &name, index)?;
            network.hosts.push(Site::inside(&name)?);
        }
        Ok(network)
    }

    /// Whether the hosts are namespaces.
    pub fn is_namespaces(&self) -> bool {
        matches!(self.kind, Kind::Namespaces { .. })
    }

    /// The address on the bed's network that ends in `octet`.
    pub fn address(&self, octet: u8) -> Ipv4Addr {
        match self.kind {
            Kind::Loopback => Ipv4Addr::new(127, 0, 0, octet),
            Kind::Namespaces { subnet, .. } => Ipv4Addr::new(10, 252, subnet, octet),
        }
    }

    /// Where the agent of the host whose address ends in `octet` puts
    /// outbound listeners: a loopback address of the host.
    pub fn outbound_address(&self, octet: u8) -> Ipv4Addr {
        match self.kind {
            Kind::Loopback => self.address(octet),
            Kind::Namespaces { .. } => Ipv4Addr::LOCALHOST,
        }
    }

    /// Where the control plane listens: in the test's namespace, on the
    /// bed's network.
    pub fn control_plane(&self) -> IpAddr {
        self.address(HERE).into()
    }

    /// An address of the test's own that is none of the hosts': where a
    /// stranger on the network connects from.
    pub fn stranger(&self) -> Ipv4Addr {
        self.address(STRANGER)
    }

    /// Every address of the test's that is none of the hosts', the
    /// [`stranger`](Self::stranger)'s first: where several strangers
    /// connect from.
    pub fn strangers(&self) -> Vec<Ipv4Addr> {
        let octets = STRANGER..STRANGER + STRANGERS;
        octets.map(|octet| self.address(octet)).collect()
    }

    /// Where the test opens sockets as the host at `index` of [`HOSTS`].
    pub fn host(&self, index: usize) -> &Site {
        &self.hosts[index]
    }

    /// Adds a namespace, to be removed when the network is dropped.
    fn add_namespace(&mut self, name: String) -> Result<String, String> {
        ip(&["netns", "add", &name])?;
        if let Kind::Namespaces { names, .. } = &mut self.kind {
            names.push(name.clone());
        }
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Makes the bridge, and joins the test's namespace to it with the
    /// control plane's and the strangers' addresses.
    fn join_test_namespace(&self, bridge: &str, subnet: u8) -> Result<(), String> {
        ip(&["-n", bridge, "link", "add", "switch", "type", "bridge"])?;
        ip(&["-n", bridge, "link", "set", "switch", "up"])?;

        let outside = format!("pb{}n{subnet}", std::process::id());
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", "test", "netns", bridge,
        ])?;
        ip(&[
            "-n", bridge, "link", "set", "test", "master", "switch", "up",
        ])?;
        for octet in [HERE].into_iter().chain(STRANGER..STRANGER + STRANGERS) {
            let address = format!("{}/24", self.address(octet));
            ip(&["addr", "add", &address, "dev", &outside])?;
        }
        ip(&["link", "set", &outside, "up"])
    }

    /// Joins the namespace `name` of host `index` to the bridge, with the
    /// host's address.
    fn join_host(&self, bridge: &str, name: &str, index: usize) -> Result<(), String> {
        let port = format!("host{index}");
        ip(&[
            "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
            bridge,
        ])?;
        ip(&["-n", bridge, "link", "set", &port, "master", "switch", "up"])?;

        let address = format!("{}/24", self.address(HOSTS[index].octet));
        ip(&["-n", name, "addr", "add", &address, "dev", "eth0"])?;
        ip(&["-n", name, "link", "set", "eth0", "up"])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Kind::Namespaces { names, .. } = &self.kind {
            for name in names.iter().rev() {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

/// Where the test opens a socket: its own namespace, or a host's.
#[derive(Clone, Debug, Default)]
pub struct Site {
    namespace: Option<Arc<Namespace>>,
}

#[derive(Debug)]
struct Namespace {
    name: String,
    handle: File,
}

impl Site {
    /// The test's own namespace.
    pub fn here() -> Site {
        Site::default()
    }

    fn inside(name: &str) -> Result<Site, String> {
        let path = format!("/run/netns/{name}");
        let handle = File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
        let namespace = Namespace {
            name: name.to_owned(),
            handle,
        };
        Ok(Site {
            namespace: Some(Arc::new(namespace)),
        })
    }

    /// The namespace's name, `None` for the test's own.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref().map(|ns| ns.name.as_str())
    }

    /// A TCP socket for `address`'s family, made in this site.
    pub fn socket(&self, address: SocketAddr) -> io::Result<TcpSocket> {
        let make = move || match address {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let Some(namespace) = &self.namespace else {
            return make();
        };
        std::thread::scope(|scope| {
            let inside = scope.spawn(|| {
                let kind = Some(LinkNameSpaceType::Network);
                move_into_link_name_space(namespace.handle.as_fd(), kind)?;
                make()
            });
            inside.join().expect("the socket's thread")
        })
    }

    /// A TCP connection from this site to `address`.
    pub async fn connect(&self, address: SocketAddr) -> io::Result<TcpStream> {
        self.socket(address)?.connect(address).await
    }

    /// A TCP connection from this site's `source` to `address`.
    pub async fn connect_from(&self, source: IpAddr, address: SocketAddr) -> io::Result<TcpStream> {
        let socket = self.socket(address)?;
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(address).await
    }

    /// A listener on `address` in this site.
    pub fn listen(&self, address: SocketAddr) -> io::Result<TcpListener> {
        let socket = self.socket(address)?;
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(1024)
    }

    /// Binds `address` in this site and returns the port it took, then
    /// lets it go; outside a runtime too.
    pub fn probe(&self, address: SocketAddr) -> io::Result<u16> {
        let socket = self.socket(address)?;
        socket.bind(address)?;
        Ok(socket.local_addr()?.port())
    }
}

/// The first subnet 10.252.N.0/24 that no bed of this process took and
/// no interface of the test's namespace has.
fn free_subnet() -> Result<u8, String> {
    let output = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output();
    let output = output.map_err(|e| format!("ip: {e}"))?;
    let in_use = String::from_utf8_lossy(&output.stdout).into_owned();

    let mut taken = SUBNETS.lock().expect("subnets");
    let free = (1..=250).find(|n| !taken.contains(n) && !in_use.contains(&format!(" 10.252.{n}.")));
    let subnet = free.ok_or("every subnet 10.252.1-250.0/24 is in use")?;
    taken.insert(subnet);
    Ok(subnet)
}

/// Removes the namespaces of beds whose process is gone: one killed
/// before it could remove them leaves them, and the test namespace's end
/// of their link, behind.
fn remove_stale() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    let names = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next());
    for name in names {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Runs `ip` with `args`; `Err` with what it said when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("ip: {error}")),
    }
}
