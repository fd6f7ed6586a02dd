// The node library: loads a private partition, distills it, seals and submits the synthetic set.
// Built up in the federation issue; it depends on Distill and FederationProtocol only.
import Distill
import FederationProtocol
