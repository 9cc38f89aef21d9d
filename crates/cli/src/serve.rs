//! `aligntds serve`: arguments -> typed settings -> the serve library. Binds
//! first (the page answers 503 while the models load), then loads the pair.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use aligntds_analysis::live::{LiveLimits, LiveSettings};
use aligntds_analysis::settings::{Field, Runtime, SettingError, SideName, Thresholds};
use aligntds_serve::{AccessSettings, AppState, ServeError, ServeSettings};
use anyhow::{Context as _, Result};

use crate::args::ServeArgs;
use crate::errors::{study_error, Flags};

fn settings(args: &ServeArgs, host: IpAddr) -> Result<ServeSettings, SettingError> {
    let pair = &args.pair;
    Ok(ServeSettings {
        live: LiveSettings {
            aligned: crate::analyze::side(SideName::Aligned, pair)?,
            base: crate::analyze::side(SideName::Base, pair)?,
            runtime: Runtime {
                dtype: crate::runtime::dtype(pair.runtime.dtype),
                device: crate::runtime::device(&pair.runtime.device)
                    .map_err(|m| SettingError::new(Field::Device, m))?,
                batch: None,
                reuse_prefixes: false,
            },
            top_k: pair.top_k,
            thresholds: Thresholds {
                unshifted_max: pair.unshifted_max,
                marginal_max: pair.marginal_max,
            },
            stops: pair.stops.clone(),
            server_options: crate::runtime::server_options(&pair.server_tuning),
            limits: LiveLimits {
                max_query_bytes: args.max_query_bytes,
                max_new_tokens: args.max_new_tokens_cap,
                default_new_tokens: args.max_new_tokens,
                time_limit_seconds: args.time_limit as f64,
            },
        },
        runs: args.runs.clone(),
        save_dir: args.save_dir.clone(),
        queue: args.queue,
        access: AccessSettings {
            host,
            allowed_hosts: args.allowed_hosts.clone(),
            token: args.token.clone(),
        },
    })
}

/// `--host` and `--port` as an address to bind (a name such as localhost resolves).
fn address(args: &ServeArgs) -> Result<SocketAddr> {
    (args.host.as_str(), args.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| {
            format!(
                "option `--host`: {:?} is not an address this machine can listen on (e.g. 127.0.0.1, ::1 or 0.0.0.0)",
                args.host
            )
        })
}

fn serve_error(e: ServeError) -> anyhow::Error {
    match e {
        ServeError::Study(e) => study_error(*e, Flags::Analyze(&[])),
        ServeError::Report(e) => anyhow::anyhow!("option `--runs`: {e}"),
        ServeError::Access(e) => {
            let flag = match e.field {
                "allowed_hosts" => "--allowed-host",
                _ => "--token",
            };
            anyhow::anyhow!("option `{flag}`: {}", e.message)
        }
        other => anyhow::Error::new(other),
    }
}

pub fn serve(args: ServeArgs) -> Result<()> {
    crate::runtime::threads(args.pair.runtime.threads)?;
    let address = address(&args)?;
    let settings =
        settings(&args, address.ip()).map_err(|e| study_error(e.into(), Flags::Analyze(&[])))?;
    let state = AppState::new(settings).map_err(serve_error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(address))
        .with_context(|| format!("option `--host`/`--port`: cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        let elsewhere = if bound.ip().is_unspecified() {
            "; from another machine, put this machine's name or address in place of 127.0.0.1"
        } else {
            ""
        };
        eprintln!(
            "warning: listening on {bound}, beyond this machine: anyone who can reach this address and has \
             the token can use the models. The token is in the address below: share it only with those who \
             may{elsewhere}"
        );
    }
    let server = runtime.spawn(aligntds_serve::serve(listener, state.clone()));
    eprintln!("aligntds serve: loading the models; the page answers meanwhile");
    let url = state.settings().access.url(bound);
    println!("{url}");
    let loaded = {
        let state: Arc<AppState> = state.clone();
        std::thread::spawn(move || state.load()).join()
    };
    match loaded {
        Ok(Ok(())) => eprintln!("models loaded; serving on {url} (Ctrl-C stops)"),
        Ok(Err(e)) => return Err(serve_error(e)),
        Err(_) => anyhow::bail!("loading the models panicked"),
    }
    runtime
        .block_on(server)
        .context("the server stopped")?
        .context("the server failed")?;
    Ok(())
}
