"""AWS's own SAM transform, offline: template.yaml becomes the CloudFormation that AWS deploys.

``aws-sam-translator`` is the library behind ``sam validate`` and the ``AWS::Serverless-2016-10-31``
transform. It runs here without any AWS call: the region comes from the local cloud and the
managed-policy map is empty (as cfn-lint runs it offline): a function's ``Policies`` name AWS managed
policies by ARN (the translator looks bare names up in that map, which needs IAM on AWS). Policy
templates (``S3CrudPolicy``, ...) are expanded offline; ``localcloud.iam`` enforces the result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import boto3
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
# Local code folders go through the translator as s3://<this bucket>/<folder> (the translator, like
# CloudFormation, only accepts S3 code locations; `sam validate` does the same substitution), and come
# back as Code/Content {S3Bucket, S3Key}: code_folder() turns them back into the folder.
LOCAL_CODE_BUCKET = "localcloud-code"


class SamTransformError(ValueError):
    """The SAM translator rejected the template (a permanent error: the template must change)."""


def _with_s3_code_uris(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of the template whose local CodeUri/ContentUri folders are S3 URIs in LOCAL_CODE_BUCKET."""
    copied = copy.deepcopy(template)  # the translator edits its input in place
    sections = [body.get("Properties") for body in (copied.get("Resources") or {}).values()]
    sections += list((copied.get("Globals") or {}).values())
    for props in sections:
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props, dict) and isinstance(props.get(key), str) and "://" not in props[key]:
                props[key] = f"s3://{LOCAL_CODE_BUCKET}/{props[key]}"
    return copied


def sam_transform(
    template: dict[str, Any], parameter_values: Mapping[str, Any], region: str
) -> dict[str, Any]:
    """The CloudFormation that AWS's SAM transform makes of ``template`` (offline: no AWS call).

    The managed-policy map is empty, as cfn-lint does offline (see the module docstring)."""
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        return translator.translate(
            _with_s3_code_uris(template),
            parameter_values=dict(parameter_values),
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as error:  # bad template: every cause, as `sam validate` says them
        causes = "; ".join(cause.message for cause in error.causes)
        raise SamTransformError(f"SAM transform failed: {causes}") from error


def code_folder(code: Any) -> str | None:
    """The local folder of a transformed Code/Content property, or None if it is not a local one."""
    if isinstance(code, Mapping) and code.get("S3Bucket") == LOCAL_CODE_BUCKET:
        return str(code["S3Key"])
    return None
