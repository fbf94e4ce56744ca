//! State machines of resources (plans, findings, rectifications,
//! self-inspection items), checked one way: a move the machine does not
//! allow is FAILED_PRECONDITION `INVALID_STATE`, naming the resource, the
//! state it is in and what was asked. Each service writes its machines in
//! its `rules.rs` as a [`Machine`] (the moves are the DOMAIN rule).

use crate::Error;

/// A lifecycle: its moves, and how its states are named in the contract.
pub struct Machine<S: 'static> {
    /// The state's contract name, e.g. `FINDING_STATE_CONFIRMED`.
    pub name: fn(&S) -> &'static str,
    /// Every allowed move, `(from, to)`.
    pub moves: &'static [(S, S)],
}

impl<S: Copy + PartialEq> Machine<S> {
    /// Whether the machine allows moving from `from` to `to`.
    pub fn may_move(&self, from: S, to: S) -> bool {
        self.moves.contains(&(from, to))
    }

    /// Checks a move of `resource` from `from` to `to`.
    pub fn require_move(&self, resource: &str, from: S, to: S) -> Result<(), Error> {
        if self.may_move(from, to) {
            Ok(())
        } else {
            Err(Error::precondition(
                crate::Shared::InvalidState,
                format!(
                    "{resource} is {}; it cannot become {}",
                    (self.name)(&from),
                    (self.name)(&to)
                ),
            ))
        }
    }

    /// Checks that `resource` is in one of the states `action` needs.
    pub fn require_state(
        &self,
        resource: &str,
        state: S,
        allowed: &[S],
        action: &str,
    ) -> Result<(), Error> {
        if allowed.contains(&state) {
            Ok(())
        } else {
            Err(Error::precondition(
                crate::Shared::InvalidState,
                format!("{resource} is {}; cannot {action}", (self.name)(&state)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Light {
        Red,
        Green,
    }

    fn name(l: &Light) -> &'static str {
        match l {
            Light::Red => "RED",
            Light::Green => "GREEN",
        }
    }

    const LIGHTS: Machine<Light> = Machine {
        name,
        moves: &[(Light::Red, Light::Green), (Light::Green, Light::Red)],
    };

    #[test]
    fn refusals_name_the_resource_and_its_state() {
        assert!(
            LIGHTS
                .require_move("lights/1", Light::Red, Light::Green)
                .is_ok()
        );
        let Err(Error::FailedPrecondition { reason, message }) =
            LIGHTS.require_move("lights/1", Light::Red, Light::Red)
        else {
            panic!("a move the machine does not allow")
        };
        assert_eq!(reason.as_str(), "INVALID_STATE");
        assert_eq!(message, "lights/1 is RED; it cannot become RED");
        assert!(
            LIGHTS
                .require_state("lights/1", Light::Green, &[Light::Green], "go")
                .is_ok()
        );
        assert!(
            LIGHTS
                .require_state("lights/1", Light::Red, &[Light::Green], "go")
                .is_err()
        );
    }
}
