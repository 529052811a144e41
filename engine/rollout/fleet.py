"""The servers of a fleet, asked over gRPC which versions they have and where labels point."""
from typing import Dict, List, Optional, Sequence, Tuple

from engine.client import open_channel
from engine.rollout import RolloutError

AVAILABLE, END = "AVAILABLE", "END"


class Fleet:
    """The servers of a fleet, asked about one model through ModelService/PredictionService."""

    def __init__(self, addresses: Sequence[str], model_name: str,
                 client_tls=None, timeout_seconds: float = 5.0):
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            model_service_pb2_grpc, prediction_service_pb2_grpc)

        if not addresses:
            raise RolloutError("no server addresses given")
        self.addresses = tuple(addresses)
        self.model_name = model_name
        self.timeout = timeout_seconds
        self._channels = {a: open_channel(a, client_tls) for a in self.addresses}
        self._models = {a: model_service_pb2_grpc.ModelServiceStub(c)
                        for a, c in self._channels.items()}
        self._predictions = {a: prediction_service_pb2_grpc.PredictionServiceStub(c)
                             for a, c in self._channels.items()}

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def version_states(self, address: str) -> Dict[int, Tuple[str, str]]:
        """version -> (state name, error message) on one server; {} when it has none."""
        import grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            get_model_status_pb2)

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        try:
            reply = self._models[address].GetModelStatus(request, timeout=self.timeout)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise RolloutError(f"{address}: GetModelStatus failed: {err.code().name}: "
                               f"{err.details()}") from err
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return {s.version: (state_name(s.state), s.status.error_message)
                for s in reply.model_version_status}

    def label_version(self, address: str, label: str) -> Optional[int]:
        """The version `label` resolves to on one server (GetModelMetadata), or None."""
        import grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            get_model_metadata_pb2)

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = self.model_name
        request.model_spec.version_label = label
        request.metadata_field.append("signature_def")
        try:
            reply = self._predictions[address].GetModelMetadata(request, timeout=self.timeout)
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                return None
            raise RolloutError(f"{address}: GetModelMetadata failed: {err.code().name}: "
                               f"{err.details()}") from err
        return reply.model_spec.version.value

    def available_everywhere(self) -> List[int]:
        """The versions every server has AVAILABLE."""
        common = None
        for address in self.addresses:
            here = {v for v, (state, _) in self.version_states(address).items()
                    if state == AVAILABLE}
            common = here if common is None else common & here
        return sorted(common or ())
