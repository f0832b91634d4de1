//! One module per `lanner-analyze` subcommand that is more than a call into the library.

pub mod rules_check;
