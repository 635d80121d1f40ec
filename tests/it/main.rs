//! The one integration-test binary: runs the real `model-optimizer` binary and the library
//! against temp roots built by `util::TestEnv`.

#[cfg(feature = "failpoints")]
mod crash;
mod deploy;
mod engine;
mod foundation;
mod run;
mod safety;
mod search;
mod triggers;
mod util;
