//! Command-line arguments of the `healthchain` binary (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `healthchain`: a node of the shared patient-event ledger, with a REPL per role.
#[derive(Debug, Parser)]
#[command(name = "healthchain", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a Doctor node with its interactive prompt.
    Doctor(NodeArgs),
    /// Start a Diagnostic Lab node with its interactive prompt.
    Lab(NodeArgs),
    /// Start a Pharmacy node with its interactive prompt.
    Pharmacy(NodeArgs),
    /// Run a node without a prompt until interrupted (Ctrl-C or SIGTERM).
    Node(NodeArgs),
    /// Start a patient's own node with the patient's prompt (consent, audit, erasure).
    Patient(PatientArgs),
    /// Create a signing key, stored encrypted with a passphrase; prints its public key.
    Keygen(KeygenArgs),
    /// Build a genesis file (the definition of a network) from a roster CSV file.
    Genesis(GenesisArgs),
    /// Write a synthetic, fully signed, valid chain of workflow events to a data directory.
    Generate(GenerateArgs),
    /// Re-validate a data directory's chain from genesis and report how fast it went.
    Verify(VerifyArgs),
    /// Write a patient's record as a FHIR R4 Bundle, as one user may read it.
    Export(ExportArgs),
    /// Record FHIR R4 bundles (Synthea's, say) as signed events.
    Import(ImportArgs),
    /// Measure committed throughput and latency of live nodes under an open-loop load.
    BenchNet(BenchNetArgs),
}

/// The kind of node a REPL serves (`healthchain doctor|lab|pharmacy`), as opposed to
/// a member's roster role ([`health_workflow::Role`], see [`NodeRole::member_role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NodeRole {
    /// Doctor: registers patients, consults, prescribes.
    Doctor,
    /// Diagnostic Lab: records test results.
    Lab,
    /// Pharmacy: fills prescriptions.
    Pharmacy,
}

impl NodeRole {
    /// The roster role of the members who use a node of this role.
    pub(crate) fn member_role(self) -> health_workflow::Role {
        match self {
            NodeRole::Doctor => health_workflow::Role::Doctor,
            NodeRole::Lab => health_workflow::Role::LabTechnician,
            NodeRole::Pharmacy => health_workflow::Role::Pharmacist,
        }
    }

    /// The prefix of the prompt (`Doc`, `Lab`, `Pharm`).
    pub(crate) fn prompt_prefix(self) -> &'static str {
        match self {
            NodeRole::Doctor => "Doc",
            NodeRole::Lab => "Lab",
            NodeRole::Pharmacy => "Pharm",
        }
    }

    /// The port a node of this role listens on unless told otherwise, as in the
    /// original walkthrough.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            NodeRole::Doctor => 5001,
            NodeRole::Lab => 5002,
            NodeRole::Pharmacy => 5003,
        }
    }

    /// The default node name for a port: `DoctorNode-5001`, `LabNode-5002`, ...
    pub(crate) fn default_node_name(self, port: u16) -> String {
        let kind = match self {
            NodeRole::Doctor => "Doctor",
            NodeRole::Lab => "Lab",
            NodeRole::Pharmacy => "Pharmacy",
        };
        format!("{kind}Node-{port}")
    }
}

/// Options shared by every command that runs a node.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// TCP port to listen on (default: 5001 doctor, 5002 lab, 5003 pharmacy, 5000
    /// node; 0 picks a free one, shown at start-up).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Peers to connect to, comma separated (`127.0.0.1:5002,127.0.0.1:5003`).
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    pub peers: Vec<String>,
    /// Node name shown in the prompt and to peers (default `DoctorNode-<port>` style).
    #[arg(long)]
    pub id: Option<String>,
    /// Directory for the block store, its genesis and the patient registry CSV
    /// (default: `healthchain-data/<node name>`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Genesis file of a real network (default: the built-in demo network).
    #[arg(long, requires = "key")]
    pub genesis: Option<PathBuf>,
    /// Encrypted key file of this node's user (with `--genesis`); its passphrase is
    /// also that user's login password.
    #[arg(long, requires = "genesis")]
    pub key: Option<PathBuf>,
    /// Serve the HTTP API, metrics and block explorer on this address (`8001` means
    /// `127.0.0.1:8001`; off unless given).
    #[arg(long, value_name = "ADDR", value_parser = crate::api::parse_api_addr)]
    pub api: Option<std::net::SocketAddr>,
    /// Read the key file's passphrase from this file (first line) instead of asking.
    /// The environment variable `HEALTHCHAIN_PASSPHRASE` works as well.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Produce blocks on this node's own while transactions wait, one every this many
    /// milliseconds at most, in turn with the other producers (off unless given:
    /// blocks are mined with `mine`, as in the walkthrough).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub block_interval: Option<u64>,
    /// Announce every block whole instead of by its transaction ids (compact relay,
    /// which saves bandwidth at some CPU).
    #[arg(long)]
    pub no_compact_blocks: bool,
}

/// Options of `healthchain patient`.
#[derive(Debug, Clone, Args)]
pub struct PatientArgs {
    /// The patient's key file, written by the registering node (in its data
    /// directory's `patients/`); its passphrase unlocks the prompt too.
    #[arg(long)]
    pub key: PathBuf,
    /// TCP port to listen on (default 5004; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Peers to connect to, comma separated (`127.0.0.1:5001,127.0.0.1:5002`).
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    pub peers: Vec<String>,
    /// Node name shown in the prompt and to peers (default `PatientNode-<port>`).
    #[arg(long)]
    pub id: Option<String>,
    /// Directory for the node's block store and vault (default:
    /// `healthchain-data/<node name>`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Genesis file of a real network (default: the built-in demo network).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Read the key file's passphrase from this file (first line) instead of asking.
    /// The environment variable `HEALTHCHAIN_PASSPHRASE` works as well.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// Options of `healthchain bench-net`.
#[derive(Debug, Clone, Args)]
pub struct BenchNetArgs {
    /// Nodes to start on loopback, with fresh data directories: 1 to 3 (doctor, lab,
    /// pharmacy).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub nodes: u8,
    /// Load running nodes instead, through their APIs (comma separated addresses). They
    /// must run the bench network: start them from the files `--write-network` writes.
    #[arg(long, value_delimiter = ',', value_parser = crate::api::parse_api_addr)]
    pub api: Vec<std::net::SocketAddr>,
    /// Seconds measured at each rate, after the warm-up.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub duration: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,
    /// Transactions a second submitted (the top rate with `--sweep`).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,
    /// Step the rate up from `--sweep-step` by `--sweep-step` to `--rate`, to find the
    /// knee; stops after the first rate whose p99 exceeds the latency target.
    #[arg(long)]
    pub sweep: bool,
    /// Rate step of a sweep.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub sweep_step: u64,
    /// Client tasks submitting, spread over the nodes.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub clients: u64,
    /// Share of the load, in percent, that is clinical events: patient registrations by
    /// the doctor, each with its demographics sealed to the care team and sent with it.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub clinical_percent: u8,
    /// Exit with an error if any transaction failed or was dropped (a smoke test).
    #[arg(long)]
    pub strict: bool,
    /// Start the nodes with `--no-compact-blocks` (blocks announced whole).
    #[arg(long)]
    pub no_compact_blocks: bool,
    /// Block interval of the nodes started here, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub block_interval: u64,
    /// The p99 latency a rate must keep to count in the summary line, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub latency_target: u64,
    /// Write the bench network (genesis, the three members' key files and their
    /// passphrase) to this directory and print how to start its nodes, instead of
    /// running.
    #[arg(long, value_name = "DIR")]
    pub write_network: Option<PathBuf>,
}

/// Options of `healthchain keygen`.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// Where to write the encrypted key file (refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Read the passphrase from this file (first line) instead of asking.
    /// The environment variable `HEALTHCHAIN_PASSPHRASE` works as well.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// Options of `healthchain genesis`.
#[derive(Debug, Clone, Args)]
pub struct GenesisArgs {
    /// Roster CSV: header `username,display_name,role,public_key_hex,balance`.
    #[arg(long)]
    pub roster: PathBuf,
    /// Where to write the genesis file (refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Network name.
    #[arg(long, default_value = "healthchain")]
    pub network: String,
    /// Proof-of-work difficulty in leading zero bits.
    #[arg(long, default_value_t = 12)]
    pub pow_bits: u8,
    /// E-cash held by the reserve that pays the rewards.
    #[arg(long, default_value_t = 1_000_000)]
    pub reserve_supply: u64,
    /// Usernames of the members allowed to produce blocks, comma-separated (default:
    /// the roster's doctors, lab technicians and pharmacists).
    #[arg(long, value_delimiter = ',', conflicts_with = "open_mining")]
    pub producers: Vec<String>,
    /// Let anyone whose block carries enough proof of work produce blocks, with no
    /// finality. UNSAFE for real patient data: an outsider with more hash power can
    /// rewrite recorded events. For teaching proof of work only.
    #[arg(long)]
    pub open_mining: bool,
    /// Members-only production, now the default (kept so older scripts still run).
    #[arg(long, hide = true, conflicts_with = "open_mining")]
    pub members_only_mining: bool,
    /// Reward to the ordering doctor when a lab result is recorded.
    #[arg(long, default_value_t = health_workflow::DEFAULT_REWARD_LAB_RESULT)]
    pub reward_lab_result: u64,
    /// Reward to the prescribing doctor when a prescription is filled.
    #[arg(long, default_value_t = health_workflow::DEFAULT_REWARD_FILL)]
    pub reward_fill: u64,
    /// What a doctor pays the lab for the results a prescription is based on.
    #[arg(long, default_value_t = health_workflow::DEFAULT_LAB_PAYMENT)]
    pub lab_payment: u64,
    /// Genesis time in milliseconds since the Unix epoch (default: now).
    #[arg(long)]
    pub timestamp: Option<u64>,
}

/// Options of `healthchain generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Number of blocks to write.
    #[arg(long, default_value_t = 100)]
    pub blocks: u64,
    /// Transactions per block.
    #[arg(long, default_value_t = 100)]
    pub txs_per_block: u32,
    /// Data directory to create (must not hold a chain already).
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// Options of `healthchain verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Data directory written by a node or by `healthchain generate`.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Skip the transaction signature checks (measures everything else).
    #[arg(long)]
    pub no_signatures: bool,
    /// Afterwards, batch-verify the same signatures again with nothing else around
    /// them, and print both times and their ratio (the overhead above the floor).
    #[arg(long)]
    pub floor: bool,
    /// Instead of verifying, time what a restarting node does with this store: reload
    /// every block (hashes, links and state re-checked, signatures not, as they were
    /// checked before the blocks were stored) until it is ready to serve.
    #[arg(long, conflicts_with_all = ["floor", "no_signatures"])]
    pub reload: bool,
    /// Instead of verifying here, time a fresh node syncing this chain over loopback
    /// from a node serving this store (every block validated on arrival, its blocks
    /// written to a scratch store that is removed afterwards).
    #[arg(long, conflicts_with_all = ["floor", "no_signatures", "reload"])]
    pub sync: bool,
}

/// Accepts `host:port` (a name or an address) and rejects anything else early.
/// `healthchain export`: a stopped node's data directory to a FHIR R4 Bundle.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The patient: an id, or a unique prefix of one.
    #[arg(long)]
    pub patient: String,
    /// The data directory (default: the demo doctor node's).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where to write the Bundle (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// On the demo network, the demo user to read as (default: dr_alice).
    #[arg(long, conflicts_with = "key")]
    pub user: Option<String>,
    /// The key file of the user to read as (any network).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// File holding the key file's passphrase.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// `healthchain import`: FHIR R4 bundles to signed events.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A bundle file, or a directory of them.
    #[arg(long)]
    pub fhir: PathBuf,
    /// The data directory of a stopped node (default: the demo doctor node's); created
    /// on the demo network if it does not exist.
    #[arg(long, conflicts_with = "api")]
    pub data_dir: Option<PathBuf>,
    /// Import through a running node's HTTP API instead (`host:port`): the importer
    /// joins the network through that node.
    #[arg(long, value_name = "ADDR")]
    pub api: Option<std::net::SocketAddr>,
    /// The network's genesis file (default: the demo network), for `--api` or a new
    /// data directory.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// The doctor's key file (default on the demo network: dr_alice).
    #[arg(long)]
    pub doctor_key: Option<PathBuf>,
    /// The lab technician's key file (default on the demo network: lab_tech_bob).
    #[arg(long)]
    pub lab_key: Option<PathBuf>,
    /// The pharmacist's key file (default on the demo network: pharm_charlie).
    #[arg(long)]
    pub pharmacy_key: Option<PathBuf>,
    /// File holding the key files' passphrase.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

fn parse_peer(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_string());
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_string())
        }
        _ => Err(format!("'{text}' is not host:port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("healthchain").chain(args.iter().copied()))
    }

    #[test]
    fn doctor_with_peers() {
        let cli = parse(&[
            "doctor",
            "--port",
            "5001",
            "--peers",
            "127.0.0.1:5002,127.0.0.1:5003",
        ])
        .expect("valid arguments");
        let Command::Doctor(args) = cli.command else {
            panic!("expected doctor");
        };
        assert_eq!(args.port, Some(5001));
        assert_eq!(args.peers, ["127.0.0.1:5002", "127.0.0.1:5003"]);
        assert_eq!(args.host, "127.0.0.1");
        assert!(args.genesis.is_none());
    }

    #[test]
    fn bad_peer_is_refused() {
        assert!(parse(&["lab", "--peers", "nowhere"]).is_err());
        assert!(parse(&["lab", "--peers", "localhost:5001"]).is_ok());
    }

    #[test]
    fn genesis_needs_a_key() {
        assert!(parse(&["pharmacy", "--genesis", "g.bin"]).is_err());
        assert!(parse(&["pharmacy", "--genesis", "g.bin", "--key", "k.key"]).is_ok());
    }

    #[test]
    fn default_names() {
        assert_eq!(NodeRole::Doctor.default_node_name(5001), "DoctorNode-5001");
        assert_eq!(NodeRole::Lab.default_node_name(5002), "LabNode-5002");
        assert_eq!(
            NodeRole::Pharmacy.default_node_name(5003),
            "PharmacyNode-5003"
        );
    }

    #[test]
    fn generate_and_verify() {
        let cli = parse(&[
            "generate",
            "--blocks",
            "3",
            "--txs-per-block",
            "5",
            "--data-dir",
            "d",
        ])
        .expect("valid");
        assert!(matches!(
            cli.command,
            Command::Generate(GenerateArgs { blocks: 3, .. })
        ));
        let cli = parse(&["verify", "--data-dir", "d", "--no-signatures"]).expect("valid");
        assert!(matches!(
            cli.command,
            Command::Verify(VerifyArgs {
                no_signatures: true,
                ..
            })
        ));
    }
}
