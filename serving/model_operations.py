"""GetModelMetadata, GetModelStatus and HandleReloadConfigRequest: the operations that run no model.

Like the inference operations (serving/inference.py) each takes the request's
scope and the request and returns the response, with TF Serving's checks,
status codes and messages. They may block (a reload waits for its loads), so
the transports call them off the event loop.
"""
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_management_pb2)

from serving import errors
from serving.inference import required_model_spec

SIGNATURE_DEF_FIELD = "signature_def"


def signature_def_map(servable) -> get_model_metadata_pb2.SignatureDefMap:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    return signature_map


def get_model_metadata(scope, request: get_model_metadata_pb2.GetModelMetadataRequest
                       ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    model_spec = required_model_spec(request)
    if not request.metadata_field:
        raise errors.invalid_argument(
            "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise errors.invalid_argument(f"Metadata field {field} is not supported")
    servable = scope.resolve(model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_def_map(servable))
    return response


def get_model_status(scope, request: get_model_status_pb2.GetModelStatusRequest
                     ) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, status in scope.manager.version_statuses(required_model_spec(request)):
        entry = response.model_version_status.add(version=version, state=status.state)
        entry.status.error_code = status.error_code
        entry.status.error_message = status.error_message
    return response


def reload_config(scope, request: model_management_pb2.ReloadConfigRequest
                  ) -> model_management_pb2.ReloadConfigResponse:
    # A failure is both the gRPC status and the response's StatusProto, as in
    # TF Serving; the transport sets the former.
    scope.manager.set_config(request.config)
    return model_management_pb2.ReloadConfigResponse()
