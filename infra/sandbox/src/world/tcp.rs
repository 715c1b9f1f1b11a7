//! TCP links: a cross-region database connection (streaming replication included) or a call
//! to the other region's order API crosses one. Each chunk is checked against the link as it
//! is now, so a cut reaches connections already open: `refuse` resets them, `blackhole`
//! holds every byte until the link heals (as TCP retransmits would deliver them), and
//! `drop-response` passes what the caller sends and drops what comes back.

use std::sync::Arc;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{CutMode, Route, World, front};

pub async fn serve(world: Arc<World>, route: Route, client: TcpStream) {
    let Some(upstream_port) = route.upstream else {
        return front::reset(client);
    };
    match world.route_cut(&route) {
        Some(CutMode::Refuse) => return front::reset(client),
        // The connection attempt itself hangs until the link heals or the caller leaves.
        Some(CutMode::Blackhole) if !wait_open(&world, &route, &client).await => return,
        _ => {}
    }
    let upstream = match TcpStream::connect(("127.0.0.1", upstream_port)).await {
        Ok(s) => s,
        Err(_) => return front::reset(client),
    };
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut changes = world.subscribe();
    let cut_off = async {
        loop {
            if world.route_cut(&route) == Some(CutMode::Refuse) {
                break;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = pump(&world, &route, Direction::Request, client_read, upstream_write) => {}
        _ = pump(&world, &route, Direction::Response, upstream_read, client_write) => {}
        _ = cut_off => {}
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

async fn pump(
    world: &World,
    route: &Route,
    direction: Direction,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut changes = world.subscribe();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        loop {
            match world.route_cut(route) {
                None => {
                    if route.caller != route.target {
                        tokio::time::sleep(world.delay()).await;
                    }
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    break;
                }
                Some(CutMode::Refuse) => return,
                Some(CutMode::DropResponse) if direction == Direction::Response => break,
                Some(CutMode::DropResponse) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    break;
                }
                Some(CutMode::Blackhole) => {
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Waits while the link is blackholed; false when the caller left or the link now refuses.
async fn wait_open(world: &World, route: &Route, client: &TcpStream) -> bool {
    let mut changes = world.subscribe();
    loop {
        match world.route_cut(route) {
            Some(CutMode::Blackhole) => {}
            Some(CutMode::Refuse) => return false,
            _ => return true,
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return false },
            _ = client.readable() => {
                let mut probe = [0u8; 1];
                if matches!(client.peek(&mut probe).await, Ok(0) | Err(_)) {
                    return false;
                }
                // Bytes are waiting: they stay queued until the link opens.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
