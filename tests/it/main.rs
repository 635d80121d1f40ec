//! The one integration-test binary: runs the real `model-optimizer` binary and the library
//! against temp roots built by `util::TestEnv`.

mod architecture;
#[cfg(feature = "failpoints")]
mod crash;
mod deploy;
mod engine;
mod foundation;
mod monitoring;
mod packaging;
mod replay;
mod run;
mod safety;
mod search;
#[cfg(feature = "failpoints")]
mod torn_read;
mod triggers;
mod util;
