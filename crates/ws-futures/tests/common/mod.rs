//! The `futures-io` side of the tests shared with ws-tokio
//! (`crates/ws-async/adapter-tests`, see its `runtime.rs`): the adapter, the
//! `futures-io` traits, and smol and async-std, on which every scenario runs.

#![allow(dead_code, unused_imports, unused_macros)] // each test binary uses a different part

use core::{future::Future, time::Duration};

use async_io::Timer;
use async_std::{net as asn, task as ast};
pub(crate) use futures_io::{AsyncRead, AsyncWrite};
pub(crate) use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
pub(crate) use ws_futures as ws;

#[path = "../../../ws-async/adapter-tests/runtime.rs"]
mod runtime;

pub(crate) use runtime::{Boxed, Rt, pair, tcp, tests_on};

#[path = "../../../ws-async/adapter-tests/frames.rs"]
mod frames;

pub(crate) use frames::masked;

/// Shuts the write side of `io` down (`close`; tokio's `shutdown`): a
/// `MessageWriter` finishes its message.
pub(crate) async fn shutdown(io: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
    io.close().await
}

macro_rules! runtime {
    ($rt:ident, $stream:ty, $block_on:path, $spawn:path) => {
        pub(crate) struct $rt;

        impl Rt for $rt {
            type S = $stream;

            fn block_on<T>(f: impl Future<Output = T>) -> T {
                $block_on(f)
            }

            fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Boxed<T> {
                Box::pin($spawn(f))
            }

            fn sleep(duration: Duration) -> Boxed<()> {
                Box::pin(async move {
                    Timer::after(duration).await;
                })
            }

            fn stream(tcp: std::net::TcpStream) -> $stream {
                <$stream>::try_from(tcp).unwrap()
            }
        }
    };
}

runtime! { Smol, smol::net::TcpStream, smol::block_on, smol::spawn }
runtime! { AsyncStd, asn::TcpStream, ast::block_on, ast::spawn }

/// The runtime of the tests that run on one (the memory measurements).
pub(crate) type Main = Smol;

/// The `#[test]`s of the scenarios `$test` (generic over [`Rt`], in the
/// invoking module) on smol and on async-std, each within `$secs` seconds.
macro_rules! on_runtimes {
    ($secs:expr; $($test:ident),+ $(,)?) => {
        $crate::common::tests_on!(smol_rt, $crate::common::Smol, $secs; $($test),+);
        $crate::common::tests_on!(async_std_rt, $crate::common::AsyncStd, $secs; $($test),+);
    };
}

pub(crate) use on_runtimes;
