//! Every adapter's client against every adapter's server: tokio, smol,
//! async-std, std and compio, 25 pairs. Each pair runs the scenario of
//! `common::Plan` (echo at 0 B .. 1 MiB and 16 MiB, ping/pong both ways,
//! close from either side with code and reason checked on the other side).

mod common;

use common::{Adapter, ClientKind, Plan, check_reports};

fn pair(client: Adapter, server: Adapter) {
    let plan = Plan {
        big: true,
        peer_server: false,
    };
    let running = server.start_server(2);
    if let Err(e) = client.run_client(&running.url, plan) {
        panic!("{client:?} client against {server:?} server: {e}");
    }
    check_reports(&running.reports(), ClientKind::Ours { big: plan.big });
}

macro_rules! pairs {
    ($($name:ident: $client:ident -> $server:ident;)*) => {
        $(
            #[test]
            fn $name() {
                pair(Adapter::$client, Adapter::$server);
            }
        )*
    };
}

pairs! {
    tokio_client_tokio_server: Tokio -> Tokio;
    tokio_client_smol_server: Tokio -> Smol;
    tokio_client_async_std_server: Tokio -> AsyncStd;
    tokio_client_std_server: Tokio -> Std;
    smol_client_tokio_server: Smol -> Tokio;
    smol_client_smol_server: Smol -> Smol;
    smol_client_async_std_server: Smol -> AsyncStd;
    smol_client_std_server: Smol -> Std;
    async_std_client_tokio_server: AsyncStd -> Tokio;
    async_std_client_smol_server: AsyncStd -> Smol;
    async_std_client_async_std_server: AsyncStd -> AsyncStd;
    async_std_client_std_server: AsyncStd -> Std;
    std_client_tokio_server: Std -> Tokio;
    std_client_smol_server: Std -> Smol;
    std_client_async_std_server: Std -> AsyncStd;
    std_client_std_server: Std -> Std;
    tokio_client_compio_server: Tokio -> Compio;
    smol_client_compio_server: Smol -> Compio;
    async_std_client_compio_server: AsyncStd -> Compio;
    std_client_compio_server: Std -> Compio;
    compio_client_tokio_server: Compio -> Tokio;
    compio_client_smol_server: Compio -> Smol;
    compio_client_async_std_server: Compio -> AsyncStd;
    compio_client_std_server: Compio -> Std;
    compio_client_compio_server: Compio -> Compio;
}
