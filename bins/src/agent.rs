//! An ssh-agent client over the Unix socket in `SSH_AUTH_SOCK`: the keys
//! it holds, and signatures made with them. The messages are
//! `proto_ssh::agent`'s; this module only moves them over the socket.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto_ssh::agent::{self, Identity, Message};
use proto_ssh::sig::{self, SigAlg, SigError, Signer};
use ssh_key::public::KeyData;

/// How long one answer may take. A key added with `ssh-add -c` waits for
/// the user to confirm; the login itself gives up after 30 seconds
/// (`runtime_std::ssh::DEFAULT_LOGIN_TIMEOUT`), so waiting longer would
/// gain nothing.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to the agent, shared by the keys it lists.
#[derive(Debug)]
pub struct Agent {
    /// `None` once an exchange broke half-way: what follows on the
    /// socket can no longer be matched to a request.
    stream: Mutex<Option<UnixStream>>,
}

impl Agent {
    /// Connects to the agent listening on `path`.
    pub fn connect(path: &Path) -> io::Result<Arc<Self>> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(Arc::new(Self {
            stream: Mutex::new(Some(stream)),
        }))
    }

    /// Sends `request` and reads the answer.
    fn call(&self, request: &Message) -> io::Result<Message> {
        let mut guard = self
            .stream
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(stream) = guard.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the agent connection broke earlier",
            ));
        };
        let answer = exchange(stream, request);
        if answer.is_err() {
            *guard = None;
        }
        answer
    }

    /// The keys the agent holds, in its order.
    pub fn identities(&self) -> io::Result<Vec<Identity>> {
        match self.call(&Message::RequestIdentities)? {
            Message::IdentitiesAnswer(ids) => Ok(ids),
            Message::Failure => Err(io::Error::other("the agent refused to list its keys")),
            other => Err(unexpected(&other)),
        }
    }

    /// Signs `data` with the key `key_blob` under `flags`; `None` if the
    /// agent refuses.
    pub fn sign(&self, key_blob: &[u8], data: &[u8], flags: u32) -> io::Result<Option<Vec<u8>>> {
        let request = Message::SignRequest {
            key_blob: key_blob.to_vec(),
            data: data.to_vec(),
            flags,
        };
        match self.call(&request)? {
            Message::SignResponse(signature) => Ok(Some(signature)),
            Message::Failure => Ok(None),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(m: &Message) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected agent answer {m:?}"),
    )
}

fn exchange(stream: &mut UnixStream, request: &Message) -> io::Result<Message> {
    stream.write_all(&request.encode())?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let bad = |e: agent::AgentError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let len = agent::payload_len(header).map_err(bad)?;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    match Message::decode(&payload) {
        Ok(m) => Ok(m),
        // SSH_AGENT_EXTENSION_FAILURE and the like: a refusal.
        Err(agent::AgentError::UnknownType(_)) => Ok(Message::Failure),
        Err(e) => Err(bad(e)),
    }
}

/// A key held by the agent.
#[derive(Debug)]
pub struct AgentKey {
    agent: Arc<Agent>,
    public: KeyData,
    blob: Vec<u8>,
    /// The agent's comment (usually the file the key came from).
    pub comment: String,
}

impl AgentKey {
    /// The public key.
    pub fn key_data(&self) -> &KeyData {
        &self.public
    }
}

impl Signer for AgentKey {
    fn public(&self) -> &KeyData {
        &self.public
    }

    fn sign_as(&self, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, SigError> {
        match self.agent.sign(&self.blob, data, agent::sign_flags(alg)) {
            Ok(Some(signature)) => Ok(signature),
            Ok(None) | Err(_) => Err(SigError::CannotSign),
        }
    }
}

/// The keys of `agent` that we can offer: certificates and key types we
/// do not speak are left out.
pub fn keys(agent: &Arc<Agent>) -> io::Result<Vec<AgentKey>> {
    let ids = agent.identities()?;
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let public = sig::parse_public_key(&id.key_blob).ok()?;
            if sig::algs_for_key(&public).is_empty() {
                return None;
            }
            Some(AgentKey {
                agent: agent.clone(),
                public,
                blob: id.key_blob,
                comment: String::from_utf8_lossy(&id.comment).into_owned(),
            })
        })
        .collect())
}
