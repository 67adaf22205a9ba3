//! Reading the `timeouts` directive from the Corefile.

use ferrodns_go::strconv::atoi;
use ferrodns_go::time::SignedDuration;
use ferrodns_plugin::{ConnTimeouts, Dispenser, Setup, SetupError};

use crate::{MAX_TIMEOUT, MIN_TIMEOUT, NAME};

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let mut t = c.block().timeouts;
    parse(c, &mut t).map_err(|e| SetupError::plugin(NAME, e))?;
    c.set_timeouts(t);
    Ok(())
}

/// Read every `timeouts` line of a block into `t` (a later value replaces an earlier one).
/// Errors carry upstream's wording and its own `plugin/timeouts: ` prefixes; the setup
/// function adds one more, as upstream does.
pub fn parse(c: &mut Dispenser, t: &mut ConnTimeouts) -> Result<(), SetupError> {
    while c.next() {
        if !c.remaining_args().is_empty() {
            return Err(SetupError::plugin(NAME, c.arg_err()));
        }
        let mut set = 0;
        while c.next_block() {
            let option = c.val().to_string();
            let args = c.remaining_args();
            let [arg] = args.as_slice() else {
                return Err(c.arg_err());
            };
            if option == "maxtcpqueries" {
                let n = atoi(arg).map_err(|e| {
                    c.err(format_args!("invalid value for maxtcpqueries '{arg}': {e}"))
                })?;
                if n == 0 || n < -1 {
                    return Err(c.err(format_args!(
                        "maxtcpqueries provided '{n}' needs to be -1 (unlimited) or a positive integer"
                    )));
                }
                t.max_queries = Some(n);
                set += 1;
                continue;
            }
            let timeout = duration_arg(arg).map_err(|e| c.err(e))?;
            if timeout.negative || timeout.abs < MIN_TIMEOUT || timeout.abs > MAX_TIMEOUT {
                return Err(c.err(format_args!(
                    "timeout provided '{timeout}' needs to be between 1 second and 24 hours"
                )));
            }
            let slot = match option.as_str() {
                "read" => &mut t.read,
                "write" => &mut t.write,
                "idle" => &mut t.idle,
                _ => return Err(c.err(format_args!("unknown option: '{option}'"))),
            };
            *slot = Some(timeout.abs);
            set += 1;
        }
        if set == 0 {
            return Err(SetupError::plugin(
                NAME,
                c.err("timeouts block with no timeouts specified"),
            ));
        }
    }
    Ok(())
}

/// CoreDNS's duration arguments: a bare integer is seconds, anything else a Go duration.
fn duration_arg(arg: &str) -> Result<SignedDuration, String> {
    let text = if atoi(arg).is_ok() {
        format!("{arg}s")
    } else {
        arg.to_string()
    };
    SignedDuration::parse(&text).map_err(|_| format!("failed to parse duration '{text}'"))
}
