//! The kernel's TCP counters that show a listen queue overflowing: read
//! before and after a step, their difference says how many connection
//! attempts had to be retried. They count for the whole machine.

/// The counters of `/proc/net/netstat` that matter here.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpCounters {
    /// Connections dropped because a listen queue was full.
    pub listen_overflows: u64,
    /// SYNs sent again because no answer came.
    pub syn_retransmits: u64,
}

impl TcpCounters {
    /// Reads the counters now; zero where they cannot be read.
    pub fn read() -> Self {
        let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Self::default();
        };
        let field = |wanted: &str| {
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(name, _)| *name == wanted)
                .and_then(|(_, value)| value.parse().ok())
                .unwrap_or(0)
        };
        Self {
            listen_overflows: field("ListenOverflows"),
            syn_retransmits: field("TCPSynRetrans"),
        }
    }

    /// What grew since `earlier`.
    pub fn since(&self, earlier: &TcpCounters) -> TcpCounters {
        TcpCounters {
            listen_overflows: self
                .listen_overflows
                .saturating_sub(earlier.listen_overflows),
            syn_retransmits: self.syn_retransmits.saturating_sub(earlier.syn_retransmits),
        }
    }
}
