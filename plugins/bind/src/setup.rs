//! Reading the `bind` directive from the Corefile.

use ferrodns_go::strconv::quote as go_quote;
use ferrodns_plugin::{Setup, SetupError};

use crate::{Interface, Line, NAME, expand, interfaces};

/// Read the arguments and block of the `bind` line the dispenser is on. Errors carry no
/// position, as upstream's do.
pub fn parse_line(c: &mut Setup<'_>) -> Result<Line, SetupError> {
    let mut line = Line {
        addrs: c.remaining_args(),
        except: Vec::new(),
    };
    if line.addrs.is_empty() {
        return Err(SetupError::new(
            "at least one address or interface name is expected",
        ));
    }
    while c.next_block() {
        match c.val() {
            "except" => {
                line.except = c.remaining_args();
                if line.except.is_empty() {
                    return Err(SetupError::new(
                        "at least one address or interface must be given to except subdirective",
                    ));
                }
            }
            other => {
                return Err(SetupError::new(format!(
                    "invalid option {}",
                    go_quote(other)
                )));
            }
        }
    }
    Ok(line)
}

/// Setup with a given interface list (the test seam of
/// [`DESCRIPTOR`](crate::DESCRIPTOR)'s setup).
pub fn setup_with_interfaces(c: &mut Setup<'_>, ifaces: &[Interface]) -> Result<(), SetupError> {
    let mut all = Vec::new();
    while c.next() {
        let line = parse_line(c).map_err(|e| SetupError::plugin(NAME, e))?;
        let ips = expand(&line.addrs, ifaces).map_err(|e| SetupError::plugin(NAME, e))?;
        let except = expand(&line.except, ifaces).map_err(|e| SetupError::plugin(NAME, e))?;
        all.extend(ips.into_iter().filter(|ip| !except.contains(ip)));
    }
    c.set_listen_hosts(all);
    Ok(())
}

/// Set up the directive (the registry calls it through [`crate::DESCRIPTOR`]).
pub(crate) fn setup(c: &mut Setup<'_>) -> Result<(), SetupError> {
    let ifaces = interfaces().unwrap_or_else(|e| {
        tracing::warn!(
            target: "plugin/bind",
            "failed to get interfaces list, cannot bind by interface name: {e}"
        );
        Vec::new()
    });
    setup_with_interfaces(c, &ifaces)
}
