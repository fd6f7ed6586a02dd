// The coordinator library: receives sealed sets, merges them by distribution matching, evaluates a global model.
// Built up in the federation issue; it depends on Distill and FederationProtocol only.
import Distill
import FederationProtocol
