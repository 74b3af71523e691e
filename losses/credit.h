// Forward-looking residuals (Pan et al., ICML 2023). With per-step credits phi_t
// (LossInputs::local_credit, from the env's intermediate reward now, from a learned potential
// with LED), the flows are reparametrised as
//     log F(s_t) = log F~(s_t) + sum_{k<t} phi_k,     log F~(sf) = 0,
// so every balance residual over the steps i..j-1 gets -sum_{t=i}^{j-1} phi_t and its terminal
// potential log R(x) becomes 0: the learned log F~ only carries what the credits do not. Applied
// to LossInputs, that is each step's log p_F lowered by its credit and log R(x) set to 0, after
// which TB, DB and SubTB are unchanged. When a trajectory's credits sum to log R(x) (the engine's
// credits do: core/scoring.h) the TB residual is exactly the plain one.
#pragma once

#include "core/types.h"

namespace gfn {

// `in` with the credits folded in as above; `in` itself when local_credit is undefined.
LossInputs with_local_credit(const LossInputs& in);

}  // namespace gfn
