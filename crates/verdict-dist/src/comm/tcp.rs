//! Ranks as processes: every rank keeps one TCP connection to rank 0, which gathers each
//! collective's buffers, reduces them in rank order and sends the result back.
//!
//! This is the CPU path of a torchrun-style launch (`MASTER_ADDR`/`MASTER_PORT` name rank 0's
//! listener) and the rendezvous a GPU backend needs to hand out its connection id. It is a
//! star, so its bandwidth does not scale like NCCL's rings; it exists to run the same
//! training code on machines without GPUs and to test multi-process launches.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{check_root, Communicator};
use crate::error::{DistError, Result};
use crate::launch::LaunchEnv;

const MAGIC: &[u8; 8] = b"VRDDIST1";
const SUM: u8 = 1;
const BROADCAST: u8 = 2;
const BARRIER: u8 = 3;
const BYTES: u8 = 4;

/// Builds a rank of a multi-process world.
pub struct TcpWorld;

impl TcpWorld {
    /// Joins the world `env` describes: rank 0 listens on
    /// [`LaunchEnv::rendezvous_endpoint`] (`MASTER_ADDR:MASTER_PORT`, or the next port under
    /// torchrun) and waits for the others, the others connect (retrying while rank 0 starts). Fails after
    /// `timeout` if the world is not complete.
    pub fn connect(env: &LaunchEnv, timeout: Duration) -> Result<TcpComm> {
        env.validate()?;
        let endpoint = env.rendezvous_endpoint()?;
        if env.rank == 0 {
            let listener = TcpListener::bind(&endpoint).map_err(|e| {
                DistError::Collective(format!("rank 0 cannot listen on {endpoint}: {e}"))
            })?;
            Self::serve(listener, env.world_size, timeout)
        } else {
            Self::join(&endpoint, env.rank, env.world_size, timeout)
        }
    }

    /// Rank 0 on an already bound listener.
    pub fn serve(listener: TcpListener, world_size: usize, timeout: Duration) -> Result<TcpComm> {
        let deadline = Instant::now() + timeout;
        let mut peers: Vec<Option<TcpStream>> = (0..world_size).map(|_| None).collect();
        listener.set_nonblocking(true).map_err(net("listen"))?;
        let mut joined = 1;
        while joined < world_size {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).map_err(net("accept"))?;
                    stream.set_nodelay(true).map_err(net("accept"))?;
                    stream
                        .set_read_timeout(Some(timeout))
                        .map_err(net("accept"))?;
                    let (rank, size) = read_hello(&mut stream)?;
                    if size != world_size || rank == 0 || rank >= world_size {
                        return Err(DistError::Collective(format!(
                            "a process joined as rank {rank} of {size}, expected a rank 1..{world_size} of {world_size}"
                        )));
                    }
                    if peers[rank].replace(stream).is_some() {
                        return Err(DistError::Collective(format!("rank {rank} joined twice")));
                    }
                    joined += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        let missing: Vec<String> = (1..world_size)
                            .filter(|r| peers[*r].is_none())
                            .map(|r| r.to_string())
                            .collect();
                        return Err(DistError::Collective(format!(
                            "ranks {} did not join within {timeout:?}",
                            missing.join(", ")
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(net("accept")(e)),
            }
        }
        Ok(TcpComm {
            rank: 0,
            world_size,
            links: Mutex::new(peers.into_iter().flatten().collect()),
        })
    }

    /// A rank other than 0, connecting to rank 0 at `endpoint`.
    pub fn join(
        endpoint: &str,
        rank: usize,
        world_size: usize,
        timeout: Duration,
    ) -> Result<TcpComm> {
        let deadline = Instant::now() + timeout;
        let mut stream = loop {
            let attempt = endpoint
                .to_socket_addrs()
                .map_err(net("resolve MASTER_ADDR"))?
                .find_map(|address| {
                    TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()
                });
            match attempt {
                Some(stream) => break stream,
                None if Instant::now() > deadline => {
                    return Err(DistError::Collective(format!(
                        "rank {rank} could not reach rank 0 at {endpoint} within {timeout:?}"
                    )))
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_nodelay(true).map_err(net("connect"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(net("connect"))?;
        let mut hello = MAGIC.to_vec();
        hello.extend((rank as u32).to_le_bytes());
        hello.extend((world_size as u32).to_le_bytes());
        stream.write_all(&hello).map_err(net("connect"))?;
        Ok(TcpComm {
            rank,
            world_size,
            links: Mutex::new(vec![stream]),
        })
    }
}

/// One rank of a [`TcpWorld`]. Rank 0 holds a connection per other rank, the others one.
pub struct TcpComm {
    rank: usize,
    world_size: usize,
    links: Mutex<Vec<TcpStream>>,
}

impl TcpComm {
    /// Sends `root`'s bytes to every rank (e.g. a GPU backend's connection id); the other
    /// ranks' `bytes` may have any length.
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>, root: usize) -> Result<()> {
        check_root(self, root)?;
        let reply = self.exchange(BYTES, root as u32, bytes)?;
        *bytes = reply;
        Ok(())
    }

    /// One collective: non-zero ranks send their payload and read the result; rank 0 reads
    /// every payload (in rank order), combines and answers.
    fn exchange(&self, operation: u8, root: u32, payload: &[u8]) -> Result<Vec<u8>> {
        let mut links = self
            .links
            .lock()
            .map_err(|_| DistError::Collective("a thread panicked during a collective".into()))?;
        if self.rank != 0 {
            let link = &mut links[0];
            write_message(link, operation, root, payload)?;
            let (reply_operation, _, reply) = read_message(link)?;
            if reply_operation != operation {
                return Err(mismatch(self.rank, operation, reply_operation));
            }
            return Ok(reply);
        }
        let mut payloads = vec![payload.to_vec()];
        for (index, link) in links.iter_mut().enumerate() {
            let (their_operation, their_root, theirs) = read_message(link)?;
            let length_differs = operation != BYTES && theirs.len() != payload.len();
            if their_operation != operation || their_root != root || length_differs {
                let message = format!(
                    "rank {} sent operation {their_operation} (root {their_root}, {} bytes) while rank 0 runs operation {operation} (root {root}, {} bytes); every rank must call the same collectives in the same order",
                    index + 1,
                    theirs.len(),
                    payload.len()
                );
                return Err(DistError::Collective(message));
            }
            payloads.push(theirs);
        }
        let result = match operation {
            SUM => {
                let mut sum = vec![0.0f32; payload.len() / 4];
                for bytes in &payloads {
                    for (s, chunk) in sum.iter_mut().zip(bytes.chunks_exact(4)) {
                        *s += f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    }
                }
                sum.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
            BROADCAST | BYTES => payloads[root as usize].clone(),
            _ => Vec::new(),
        };
        for link in links.iter_mut() {
            write_message(link, operation, root, &result)?;
        }
        Ok(result)
    }

    fn float_exchange(&self, operation: u8, root: u32, buffer: &mut [f32]) -> Result<()> {
        let payload: Vec<u8> = buffer.iter().flat_map(|x| x.to_le_bytes()).collect();
        let reply = self.exchange(operation, root, &payload)?;
        if reply.len() != payload.len() {
            return Err(DistError::Collective(format!(
                "rank {} expected {} bytes back, got {}",
                self.rank,
                payload.len(),
                reply.len()
            )));
        }
        for (x, chunk) in buffer.iter_mut().zip(reply.chunks_exact(4)) {
            *x = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Ok(())
    }
}

impl Communicator for TcpComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&self, buffer: &mut [f32]) -> Result<()> {
        self.float_exchange(SUM, 0, buffer)
    }

    fn broadcast(&self, buffer: &mut [f32], root: usize) -> Result<()> {
        check_root(self, root)?;
        self.float_exchange(BROADCAST, root as u32, buffer)
    }

    fn barrier(&self) -> Result<()> {
        self.exchange(BARRIER, 0, &[]).map(|_| ())
    }
}

fn net(what: &'static str) -> impl Fn(std::io::Error) -> DistError {
    move |e| DistError::Collective(format!("{what}: {e}"))
}

fn mismatch(rank: usize, sent: u8, got: u8) -> DistError {
    DistError::Collective(format!(
        "rank {rank} ran operation {sent} but rank 0 answered operation {got}"
    ))
}

fn read_hello(stream: &mut TcpStream) -> Result<(usize, usize)> {
    let mut hello = [0u8; 16];
    stream.read_exact(&mut hello).map_err(net("handshake"))?;
    if &hello[..8] != MAGIC {
        return Err(DistError::Collective(
            "a connection to MASTER_PORT did not speak this protocol (another service on the port?)".into(),
        ));
    }
    let rank = u32::from_le_bytes([hello[8], hello[9], hello[10], hello[11]]) as usize;
    let size = u32::from_le_bytes([hello[12], hello[13], hello[14], hello[15]]) as usize;
    Ok((rank, size))
}

fn write_message(stream: &mut TcpStream, operation: u8, root: u32, payload: &[u8]) -> Result<()> {
    let mut header = [0u8; 13];
    header[0] = operation;
    header[1..5].copy_from_slice(&root.to_le_bytes());
    header[5..13].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    stream.write_all(&header).map_err(net("send"))?;
    stream.write_all(payload).map_err(net("send"))
}

fn read_message(stream: &mut TcpStream) -> Result<(u8, u32, Vec<u8>)> {
    let mut header = [0u8; 13];
    stream.read_exact(&mut header).map_err(net("receive"))?;
    let root = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let mut length = [0u8; 8];
    length.copy_from_slice(&header[5..13]);
    let length = u64::from_le_bytes(length) as usize;
    if length > (1 << 34) {
        return Err(DistError::Collective(format!(
            "a peer announced {length} bytes"
        )));
    }
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).map_err(net("receive"))?;
    Ok((header[0], root, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_ranks_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let timeout = Duration::from_secs(20);
        let results: Vec<Vec<f32>> = std::thread::scope(|scope| {
            let root = scope.spawn(move || TcpWorld::serve(listener, 3, timeout));
            let others: Vec<_> = (1..3)
                .map(|rank| {
                    let endpoint = endpoint.clone();
                    scope.spawn(move || TcpWorld::join(&endpoint, rank, 3, timeout))
                })
                .collect();
            let mut comms = vec![root.join().unwrap().unwrap()];
            comms.extend(others.into_iter().map(|h| h.join().unwrap().unwrap()));
            let handles: Vec<_> = comms
                .into_iter()
                .map(|comm| {
                    scope.spawn(move || {
                        let rank = comm.rank() as f32;
                        let mut sum = vec![rank, 1.0];
                        comm.all_reduce_sum(&mut sum).unwrap();
                        let mut mean = vec![rank];
                        comm.all_reduce_mean(&mut mean).unwrap();
                        let mut value = vec![rank * 7.0];
                        comm.broadcast(&mut value, 1).unwrap();
                        comm.barrier().unwrap();
                        let mut bytes = if comm.rank() == 2 {
                            b"id".to_vec()
                        } else {
                            Vec::new()
                        };
                        comm.broadcast_bytes(&mut bytes, 2).unwrap();
                        let mut out = sum;
                        out.extend(mean);
                        out.extend(value);
                        out.extend(bytes.iter().map(|b| *b as f32));
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for result in &results {
            assert_eq!(result, &vec![3.0, 3.0, 1.0, 7.0, b'i' as f32, b'd' as f32]);
        }
    }
}
