//! The one integration-test binary: runs the real `model-optimizer` binary and the library
//! against temp roots built by `util::TestEnv`.

mod architecture;
mod deploy;
mod engine;
mod foundation;
mod packaging;
mod replay;
mod run;
mod search;
mod triggers;
mod util;
